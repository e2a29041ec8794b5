import { constants, openSync, statSync } from 'node:fs';
import { DeviceError, errnoName } from '../util/errors.js';
import { FdEventReader, type ReaderCallbacks } from './fd-reader.js';

export function isFifo(path: string): boolean {
  try {
    return statSync(path).isFIFO();
  } catch {
    return false;
  }
}

/**
 * A FIFO carrying native struct input_event records (the Contract's test and bench input).
 * Opened O_RDWR so this process is itself a writer: writers coming and going never produce EOF,
 * and open() does not wait for a first writer.
 */
export class FifoSource {
  private reader: FdEventReader | undefined;

  constructor(readonly path: string) {}

  start(cb: ReaderCallbacks): void {
    if (!isFifo(this.path)) throw new DeviceError(this.path, 'not a FIFO');
    let fd: number;
    try {
      fd = openSync(this.path, constants.O_RDWR | constants.O_NONBLOCK);
    } catch (err) {
      throw new DeviceError(this.path, `open failed: ${errnoName(err)}`, { cause: err });
    }
    this.reader = new FdEventReader(this.path, fd, cb);
    this.reader.start();
  }

  close(): void {
    this.reader?.close();
    this.reader = undefined;
  }
}
