import type { Config } from '../config/schema.js';
import type { PipelineOptions } from './pipeline.js';
import type { InputSourcesOptions } from './sources.js';

/** Pipeline options from the config's `input` section (blocked replaces the defaults when set). */
export function pipelineOptions(input: Config['input']): PipelineOptions {
  return {
    windowMs: input.hotkey.windowMs,
    hotkey: input.hotkey.key,
    nextKey: input.hotkey.next,
    prevKey: input.hotkey.previous,
    ctrlAltDelToVm: input.ctrlAltDelToVm,
    ...(input.blocked ? { blocked: input.blocked } : {}),
  };
}

/** Source options from the config's `input` section. */
export function sourcesOptions(input: Config['input']): InputSourcesOptions {
  return { devices: input.devices };
}
