/**
 * Where routed input goes: one sink per display. The XTEST sink (src/x/xtest-sink.ts) is the real
 * one; tests use a recording sink. Key codes are Linux codes (the X keycode is code + 8).
 */
export interface DisplaySink {
  key(code: number, down: boolean): void;
  /** X button number: 1 left, 2 middle, 3 right, 4/5 wheel up/down, 6/7 wheel left/right, 8/9 side. */
  button(button: number, down: boolean): void;
  moveRelative(dx: number, dy: number): void;
  /** Absolute position as a fraction of the screen, 0..1 on each axis. */
  moveAbsolute(fx: number, fy: number): void;
  /** Push buffered requests to the server (called once per input batch). */
  flush(): void;
}

/** Set the keyboard LEDs of every grabbed physical keyboard (bit 0 NumLock, 1 CapsLock, 2 ScrollLock). */
export interface LedSink {
  setLeds(mask: number): void;
}
