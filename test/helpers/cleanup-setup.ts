import { afterAll } from 'vitest';
import { removeTempDirs } from './temp.js';

// Registered first, so it runs after every afterAll of the test file (hooks unwind like a stack).
afterAll(() => removeTempDirs());
