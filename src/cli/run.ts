import { resolveConfigPath } from '../config/config.js';
import { loadEffectiveConfig } from '../config/overlay.js';
import { startHeadStart } from '../service/head-start.js';
import { pinInputThread } from '../util/affinity.js';
import { errText } from '../util/errors.js';
import { createLogger, LogRing } from '../util/log.js';
import { INPUT_NICE, raiseInputPriority } from '../util/priority.js';
import { markStart } from '../util/start-trace.js';

/**
 * `kvmux run`: the service in the foreground. SIGTERM/SIGINT stop everything gracefully and
 * restore the VT; SIGUSR1 stops kvmux but leaves VMs and X servers running for re-adoption
 * (what a service upgrade wants).
 */
export default async function run(opts: { config?: string }): Promise<number> {
  markStart('run'); // node, the CLI and this module's imports are loaded
  const path = resolveConfigPath(opts.config);
  // the --config file with kvmux's own layer (stateDir/config.yaml: vm.create/update/delete) over it
  const effective = loadEffectiveConfig(path, { quarantine: true });
  const { base: config, overlay, quarantined } = effective;
  markStart('config');
  const ring = new LogRing();
  const log = createLogger({ ring });
  const vmNames = effective.config.vms.map((v) => v.name);
  // the first display's X server starts while the service's modules load (they are not needed for it)
  const headStart = startHeadStart(config, vmNames, log);
  const dropHeadStart = () =>
    headStart?.server.then(
      (s) => s.stop(),
      () => {},
    ) ?? Promise.resolve();
  const { Service, createOverlayMenuView } = await loadService(dropHeadStart);
  markStart('service-loaded');
  if (quarantined)
    log.error(
      { moved: quarantined.path, problem: quarantined.error },
      "kvmux's own config layer no longer fits the config file: moved aside, starting from the file alone",
    );
  const service = new Service({ config, overlay, log, ring, menuView: createOverlayMenuView, headStart });
  let stopping: Promise<void> | null = null;
  const stop = (signal: NodeJS.Signals, leaveRunning: boolean) => {
    log.info({ signal }, 'signal');
    if (stopping) return;
    stopping = service.stop({ leaveRunning }).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: errText(err) }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM', false));
  process.on('SIGINT', () => stop('SIGINT', false));
  process.on('SIGUSR1', () => stop('SIGUSR1', true));
  process.on('uncaughtException', (err) => {
    // VMs and X servers live on; a restarted kvmux re-adopts them
    log.fatal({ err: err.stack ?? String(err) }, 'uncaught exception: exiting, VMs left running');
    process.exit(70);
  });
  log.info({ config: path, vms: config.vms.length, console: config.console }, 'starting');
  const priority = raiseInputPriority({
    realtime: config.input.realtime,
    nice: Number(process.env['KVMUX_INPUT_NICE'] ?? INPUT_NICE),
  });
  if (priority.error) log.warn(priority, 'input priority not raised: keys may lag on a busy machine');
  else if (priority.realtimeRefused)
    log.warn(priority, 'input thread not real-time (refused): nice only, keys may lag on a busy machine');
  else log.info(priority, 'input priority raised (children start at SCHED_OTHER nice 0)');
  if (priority.policy === 'rr' && config.input.pinCpu) {
    const pinned = await pinInputThread();
    if (pinned && 'refused' in pinned)
      log.warn(pinned, 'input thread not pinned: keys may wait for a second CPU to wake');
    else if (pinned) log.info(pinned, 'input thread pinned; the X server on screen joins it on that CPU');
  }
  try {
    await service.start();
  } catch (err) {
    log.fatal({ err: errText(err) }, 'start failed');
    await service.stop().catch(() => {});
    // a start that failed before the displays existed leaves the head start's server to us
    await dropHeadStart();
    process.stderr.write(`kvmux run: ${errText(err)}\n`);
    process.stderr.write('kvmux run: `kvmux doctor` checks what this machine is missing\n');
    return 1;
  }
  await new Promise(() => {});
  return 0;
}

const earlySignals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGUSR1'];

/**
 * The service's modules, loaded while the head start's X server starts. A signal meanwhile (or a
 * failed load) stops that server: nothing else knows of it yet, and no record lets a later kvmux adopt it.
 */
async function loadService(dropHeadStart: () => Promise<void>) {
  const onSignal = () => void dropHeadStart().finally(() => process.exit(1));
  for (const sig of earlySignals) process.once(sig, onSignal);
  try {
    const [{ Service }, { createOverlayMenuView }] = await Promise.all([
      import('../service/service.js'),
      import('../service/overlay-view.js'),
    ]);
    return { Service, createOverlayMenuView };
  } catch (err) {
    await dropHeadStart();
    throw err;
  } finally {
    for (const sig of earlySignals) process.off(sig, onSignal);
  }
}
