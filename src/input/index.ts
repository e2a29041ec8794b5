/** Public face of src/input: the pipeline, its sources and the pieces others code against. */
export {
  type Chord,
  CTRL_ALT_DEL,
  DEFAULT_BLOCKED,
  parseChord,
  parseChords,
  QEMU_HOST_KEYS,
} from './chord.js';
export { keyCode, keyName } from './codes.js';
export { decodeEvent, encodeEvent, INPUT_EVENT_SIZE, type InputEvent } from './event.js';
export { pipelineOptions, sourcesOptions } from './from-config.js';
export {
  type Decision,
  InputPipeline,
  type PipelineClock,
  type PipelineOptions,
  type PipelineOutputs,
  realClock,
} from './pipeline.js';
export type { AxisRange } from './router.js';
export type { DisplaySink, LedSink } from './sink.js';
export { InputSources, type InputSourcesOptions, type InputTarget, type SourceInfo } from './sources.js';
