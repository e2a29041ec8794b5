/**
 * Typings for the pure-JS `x11` package (4.2.x), covering only what kvmux uses. Request methods
 * take an optional trailing callback; a callback returning true marks an X error as handled
 * (otherwise the client emits 'error'). Written from node_modules/x11/lib (xcore.js, corereqs.js,
 * generated/core-events.js, ext/xtest.js).
 */
declare module 'x11' {
  import type { EventEmitter } from 'node:events';

  /** An X protocol error as the client builds it (xcore.js expectReplyHeader). */
  export interface XProtocolError extends Error {
    error: number;
    seq: number;
    badParam: number;
    minorOpcode: number;
    majorOpcode: number;
  }

  export type Callback<T> = (err: XProtocolError | Error | null | undefined, value: T) => unknown;
  export type VoidCallback = (err: XProtocolError | Error | null | undefined, value?: undefined) => unknown;

  export interface Visual {
    vid: number;
    class: number;
    bits_per_rgb: number;
    map_ent: number;
    red_mask: number;
    green_mask: number;
    blue_mask: number;
  }

  export interface Screen {
    root: number;
    default_colormap: number;
    white_pixel: number;
    black_pixel: number;
    pixel_width: number;
    pixel_height: number;
    root_visual: number;
    root_depth: number;
    depths: Record<number, Record<number, Visual>>;
  }

  export interface Display {
    screen: Screen[];
    min_keycode: number;
    max_keycode: number;
    vendor: string;
    release: number;
    client: XClient;
  }

  /** Event objects as core-events.js unpacks them; fields depend on `name`. */
  export interface XEvent {
    type: number;
    name: string;
    seq: number;
    wid: number;
    parent?: number;
    event?: number;
    keycode?: number;
    time?: number;
    x?: number;
    y?: number;
    width?: number;
    height?: number;
    count?: number;
    borderWidth?: number;
    sibling?: number;
    stackMode?: number;
    mask?: number;
    overrideRedirect?: boolean | number;
    fromConfigure?: boolean;
    message_type?: number;
    format?: number;
    data?: number[];
    rawData?: Buffer;
  }

  export interface WindowAttributes {
    visual: number;
    klass: number;
    mapState: number;
    overrideRedirect: number;
    colormap: number;
    allEventMasks: number;
    myEventMasks: number;
  }

  export interface Geometry {
    depth: number;
    /** The root window of the drawable's screen. */
    windowid: number;
    xPos: number;
    yPos: number;
    width: number;
    height: number;
    borderWidth: number;
  }

  export interface Tree {
    root: number;
    parent: number;
    children: number[];
  }

  export interface TextExtents {
    fontAscent: number;
    fontDescent: number;
    overallAscent: number;
    overallDescent: number;
    overallWidth: number;
    overallLeft: number;
    overallRight: number;
  }

  export interface CharInfo {
    leftSideBearing: number;
    rightSideBearing: number;
    characterWidth: number;
    ascent: number;
    descent: number;
  }

  export interface FontInfo {
    minBounds: CharInfo;
    maxBounds: CharInfo;
    minCharOrByte2: number;
    maxCharOrByte2: number;
    defaultChar: number;
    fontAscent: number;
    fontDescent: number;
    charInfos: CharInfo[];
  }

  export interface Color {
    red: number;
    green: number;
    blue: number;
    pixel: number;
  }

  export interface Image {
    depth: number;
    visualId: number;
    data: Buffer;
  }

  export interface WindowValues {
    backgroundPixel?: number;
    borderPixel?: number;
    overrideRedirect?: number;
    eventMask?: number;
    colormap?: number;
    backingStore?: number;
    saveUnder?: number;
    doNotPropagateMask?: number;
  }

  export interface ConfigureValues {
    x?: number;
    y?: number;
    width?: number;
    height?: number;
    borderWidth?: number;
    sibling?: number;
    stackMode?: number;
  }

  export interface GcValues {
    foreground?: number;
    background?: number;
    font?: number;
    graphicsExposures?: number;
  }

  export interface XTestExt {
    majorOpcode: number;
    KeyPress: 2;
    KeyRelease: 3;
    ButtonPress: 4;
    ButtonRelease: 5;
    MotionNotify: 6;
    FakeInput(type: number, detail: number, time: number, wid: number, x: number, y: number): void;
    GetVersion(maj: number, min: number, cb: Callback<[number, number]>): void;
  }

  export interface XClient extends EventEmitter {
    display: Display;
    seq_num: number;
    stream: import('node:net').Socket;
    pack_stream: { flush(cb?: () => void): void };
    AllocID(): number;
    ReleaseID(id: number): void;
    sync(): Promise<void>;
    flush(): Promise<void>;
    close(cb?: (err?: Error) => void): void;
    terminate(): void;
    require(ext: 'xtest', cb: Callback<XTestExt>): void;

    CreateWindow(
      wid: number,
      parent: number,
      x: number,
      y: number,
      width: number,
      height: number,
      borderWidth: number,
      depth: number,
      klass: number,
      visual: number,
      values: WindowValues,
      cb?: VoidCallback,
    ): void;
    ChangeWindowAttributes(wid: number, values: WindowValues, cb?: VoidCallback): void;
    GetWindowAttributes(wid: number, cb: Callback<WindowAttributes>): void;
    GetGeometry(drawable: number, cb: Callback<Geometry>): void;
    DestroyWindow(wid: number, cb?: VoidCallback): void;
    MapWindow(wid: number, cb?: VoidCallback): void;
    UnmapWindow(wid: number, cb?: VoidCallback): void;
    ConfigureWindow(wid: number, values: ConfigureValues, cb?: VoidCallback): void;
    RaiseWindow(wid: number, cb?: VoidCallback): void;
    QueryTree(wid: number, cb: Callback<Tree>): void;
    InternAtom(onlyIfExists: boolean, name: string, cb: Callback<number>): void;
    ChangeProperty(
      mode: number,
      wid: number,
      property: number,
      type: number,
      format: 8 | 16 | 32,
      data: Buffer | string | number[],
      cb?: VoidCallback,
    ): void;
    GetProperty(
      del: number,
      wid: number,
      property: number,
      type: number,
      offset: number,
      length: number,
      cb: Callback<{ type: number; data: Buffer }>,
    ): void;
    SendEvent(
      destination: number,
      propagate: number,
      eventMask: number,
      event: Buffer,
      cb?: VoidCallback,
    ): void;
    SetInputFocus(wid: number, revertTo: number, cb?: VoidCallback): void;
    QueryPointer(
      wid: number,
      cb: Callback<{ root: number; child: number; rootX: number; rootY: number }>,
    ): void;
    GetInputFocus(cb: Callback<{ focus: number; revertTo: number }>): void;
    OpenFont(fid: number, name: string, cb?: VoidCallback): void;
    CloseFont(fid: number, cb?: VoidCallback): void;
    QueryFont(font: number, cb: Callback<FontInfo>): void;
    QueryTextExtents(font: number, text: string, cb: Callback<TextExtents>): void;
    CreateGC(gc: number, drawable: number, values: GcValues, cb?: VoidCallback): void;
    ChangeGC(gc: number, values: GcValues, cb?: VoidCallback): void;
    FreeGC(gc: number, cb?: VoidCallback): void;
    PolyFillRectangle(drawable: number, gc: number, coords: number[], cb?: VoidCallback): void;
    PolyText8(drawable: number, gc: number, x: number, y: number, items: string[], cb?: VoidCallback): void;
    ClearArea(
      wid: number,
      x: number,
      y: number,
      w: number,
      h: number,
      exposures: number,
      cb?: VoidCallback,
    ): void;
    AllocColor(cmap: number, r: number, g: number, b: number, cb: Callback<Color>): void;
    GetImage(
      format: number,
      drawable: number,
      x: number,
      y: number,
      w: number,
      h: number,
      planeMask: number,
      cb: Callback<Image>,
    ): void;
    KillClient(resource: number, cb?: VoidCallback): void;
  }

  export interface CreateClientOptions {
    display?: string;
    /** Batch requests until the next tick / explicit flush. */
    bufferRequests?: boolean;
    disableBigRequests?: boolean;
    shm?: boolean | 'off';
  }

  export function createClient(
    options: CreateClientOptions,
    cb: (err: Error | undefined, display: Display) => void,
  ): XClient;

  export const eventMask: Record<string, number>;
  export const eventTypes: Record<string, number>;
  export function packEvent(ev: Record<string, unknown>): Buffer;
  export const InputOutput: 1;
  export const InputOnly: 2;
  export const CopyFromParent: 0;
}
