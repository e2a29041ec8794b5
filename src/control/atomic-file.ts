// Moved to src/util/atomic-file.ts (one writer for every persisted file); kept for parallel branches.
export { fsyncDir, writeFileAtomic } from '../util/atomic-file.js';
