import { join } from 'node:path';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { defineMethod, type RpcMethod } from '../control/rpc/method.js';
import { checkPhrase, loadPhrase, PHRASE_FILE } from '../menu/phrase.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { ConfigError, RpcCode, RpcError } from '../util/errors.js';

/**
 * The host phrase the trusted menu shows (a guest cannot know it): menu.phrase from the config
 * file when set, else the one kept in stateDir, which the console may change (first-boot setup).
 */
export class HostPhrase {
  private current: string;

  constructor(private readonly config: Pick<Config, 'menu' | 'stateDir'>) {
    this.current = loadPhrase({ configured: config.menu.phrase, stateDir: config.stateDir });
  }

  get value(): string {
    return this.current;
  }

  async set(phrase: string): Promise<string> {
    if (this.config.menu.phrase !== undefined)
      throw new RpcError(RpcCode.conflict, 'menu.phrase is set in the config file; change it there');
    let text: string;
    try {
      text = checkPhrase(phrase, 'phrase');
    } catch (err) {
      if (err instanceof ConfigError) throw new RpcError(RpcCode.invalidParams, err.message);
      throw err;
    }
    await writeFileAtomic(join(this.config.stateDir, PHRASE_FILE), `${text}\n`, 0o600);
    this.current = text;
    return text;
  }
}

/** `menu.phrase {phrase?}`: read or change it; the console only, since the phrase is what a guest must not know. */
export function phraseMethods(phrase: HostPhrase): RpcMethod[] {
  return [
    defineMethod({
      name: 'menu.phrase',
      params: z.strictObject({ phrase: z.string().min(1).max(64).optional() }),
      summary: 'the host phrase of the trusted menu; with phrase: set it (console only)',
      async handler(p, ctx) {
        if (ctx.caller.kind !== 'local')
          throw new RpcError(RpcCode.forbidden, 'the host phrase is for the console only');
        return { phrase: p.phrase === undefined ? phrase.value : await phrase.set(p.phrase) };
      },
    }),
  ];
}
