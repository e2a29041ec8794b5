import { z } from 'zod';
import { configSchema } from '../config/schema.js';

export default async function printSchema(): Promise<number> {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' });
  process.stdout.write(`${JSON.stringify({ title: 'kvmux config', ...schema }, null, 2)}\n`);
  return 0;
}
