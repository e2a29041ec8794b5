/**
 * src/x: X servers (Xvfb / Xorg on a VT), the kiosk WM, XTEST input, the overlay painter,
 * screenshots and the VT console. Everything here survives the X server dying: connections
 * resolve `closed`, sinks drop input, nothing throws out of an event handler.
 */
export { type ConnectOptions, connectDisplay, isXProtocolError, type XConnection } from './connection.js';
export { parseDisplayNumber } from './display-number.js';
export { type KioskWm, type KioskWmOptions, startKioskWm } from './kiosk-wm.js';
export {
  createOverlay,
  defaultFonts,
  type FontMetrics,
  latin1,
  type Overlay,
  type OverlayOptions,
  rgbToPixel,
} from './overlay.js';
export {
  distinctColours,
  encodePng,
  grab,
  pixel,
  probe,
  type Rgb,
  type RgbImage,
  screenIsBlank,
  screenshot,
} from './screenshot.js';
export {
  adoptXServer,
  type StartXServerOptions,
  startXServer,
  type XServer,
  type XServerExit,
  type XServerKind,
  type XServerRecord,
} from './server.js';
export {
  activateVtNow,
  activeVt,
  allocateVt,
  closeConsole,
  openVts,
  parseActive,
  releaseVt,
  rememberActiveVt,
  switchVt,
  type VtWaitMethod,
  vtState,
} from './vt.js';
export { xorgConfig } from './xorg-config.js';
export { createXtestSink, type XtestSink } from './xtest-sink.js';
