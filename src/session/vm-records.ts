import { JsonRecordStore } from '../util/record-store.js';
import type { VmRecord } from './backends/backend.js';

function isVmRecord(name: string, r: unknown): r is VmRecord {
  const rec = r as Partial<VmRecord> | null;
  return rec?.name === name && Number.isInteger(rec.pid) && typeof rec.startTime === 'number';
}

/** VM records in <stateDir>/vms/NAME.json. */
export class VmRecordStore extends JsonRecordStore<VmRecord> {
  constructor(stateDir: string) {
    super(stateDir, 'vms', isVmRecord);
  }

  save(record: VmRecord): void {
    this.put(record.name, record);
  }
}
