import { sleep } from '../../src/demo/fifo-keys.js';
import { connectDisplay } from '../../src/x/connection.js';
import { grab, type RgbImage } from '../../src/x/screenshot.js';
import { changedPixels } from '../session/helpers/display.js';

async function capture(display: string): Promise<RgbImage> {
  const conn = await connectDisplay(display);
  try {
    return await grab(conn);
  } finally {
    await conn.close();
  }
}

/**
 * Do `act` (keys typed into a TUI), then wait until the screen has changed and stayed still for a
 * moment: the next key then reaches the dialog it is meant for, however loaded the machine is.
 * Fixed sleeps between keys lose keys to a TUI that is still drawing.
 */
export async function actAndSettle(
  display: string,
  act: () => Promise<void>,
  timeoutMs = 20_000,
): Promise<void> {
  const before = await capture(display);
  await act();
  const end = Date.now() + timeoutMs;
  let last = before;
  let changed = false;
  for (;;) {
    await sleep(150);
    const now = await capture(display);
    const diff = changedPixels(last, now, 0, now.height);
    if (!changed) changed = changedPixels(before, now, 0, now.height) > 0;
    else if (diff === 0) return; // changed, then still for one look
    last = now;
    if (Date.now() > end)
      throw new Error(`the screen of ${display} did not ${changed ? 'settle' : 'change'}`);
  }
}
