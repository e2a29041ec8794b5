import type { AxisRange } from './router.js';

/**
 * Touchpads report where the finger is (ABS_X/ABS_Y), but a pointer must follow how it moves:
 * each movement while touching becomes a relative delta; lifting the finger forgets the position,
 * so putting it down elsewhere does not jump. Pure.
 */
export interface PadState {
  readonly touching: boolean;
  readonly lastX: number | undefined;
  readonly lastY: number | undefined;
}

/** Pixels one full touchpad width moves the pointer. */
export const PAD_SPAN_PX = 1200;
export const PAD_IDLE: PadState = { touching: false, lastX: undefined, lastY: undefined };

/** BTN_TOUCH and BTN_TOOL_* (0x140..0x14f) on a touchpad mean finger contact, never a click. */
export function isPadContact(code: number): boolean {
  return code >= 0x140 && code <= 0x14f;
}

/** Finger down or up: either way the last position is forgotten, so a new touch never jumps. */
export function padContact(down: boolean): PadState {
  return down ? { touching: true, lastX: undefined, lastY: undefined } : PAD_IDLE;
}

/** A new position on one axis → the state and the pointer delta in pixels (0 for the first sample). */
export function padMove(pad: PadState, axis: 'x' | 'y', value: number, range: AxisRange): [PadState, number] {
  const span = Math.max(1, range.max - range.min);
  const last = axis === 'x' ? pad.lastX : pad.lastY;
  const delta = pad.touching && last !== undefined ? ((value - last) * PAD_SPAN_PX) / span : 0;
  const next = axis === 'x' ? { ...pad, lastX: value } : { ...pad, lastY: value };
  return [next, delta];
}
