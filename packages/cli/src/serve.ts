/**
 * Runs one long-lived role (coordinator shard, sidecar, example service) as this process: prints
 * "TXMESH_READY <url>" on stdout once it is ready, and closes cleanly on SIGTERM/SIGINT.
 */
import { startRoleTelemetry } from './serve-telemetry.ts';
import { METRICS_PREFIX, sdkDisabled, type TelemetryOptions } from './telemetry-options.ts';

export interface Closable {
  url: string;
  close(): Promise<void>;
  /**
   * For a role that is listening before it is ready (a sidecar waits for every shard to accept its
   * registration): resolves when ready, rejects with the reason when `timeoutMs` passes first.
   */
  whenReady?(timeoutMs?: number): Promise<void>;
}

export const READY_PREFIX = 'TXMESH_READY ';

export interface ServeOptions {
  /** How long a role may take from listening to ready; 0 waits without bound (default 60 000). */
  readyTimeoutMs?: number;
  /** Names the role in the message printed when it never became ready, e.g. "sidecar of inventory". */
  role?: string;
  /**
   * /metrics and the OTEL_*-configured SDK (serve-telemetry.ts): providers registered before the role starts
   * (its instruments are created against them), the metrics SDK loaded after its ready line. Without it the
   * process registers no OpenTelemetry provider at all.
   */
  telemetry?: TelemetryOptions;
}

export const DEFAULT_READY_TIMEOUT_MS = 60_000;

export async function serve(start: () => Promise<Closable>, options: ServeOptions = {}): Promise<number> {
  // Installed before anything starts, so a signal during a long wait for readiness still stops cleanly.
  let stop: () => void = () => undefined;
  const stopped = new Promise<'stopped'>((resolve) => {
    stop = () => resolve('stopped');
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    // Started by a cluster harness: its stdin pipe closes when the harness dies, even by SIGKILL, so the
    // member stops instead of living on and heartbeating into a port a later cluster may own.
    if (process.env.TXMESH_EXIT_WITH_PARENT === '1') {
      process.stdin.once('end', stop);
      process.stdin.once('error', stop);
      process.stdin.resume();
    }
  });
  const cleanUp = (): void => {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    // A resumed stdin would keep the event loop alive after close.
    if (process.env.TXMESH_EXIT_WITH_PARENT === '1') process.stdin.destroy();
  };
  // A process without telemetry (a client command, the injector, OTEL_SDK_DISABLED) never loads the SDK.
  const telemetry = options.telemetry;
  const observed = telemetry === undefined || sdkDisabled(telemetry.env ?? process.env) ? undefined : await startRoleTelemetry(telemetry);
  if (observed !== undefined) process.stdout.write(`${METRICS_PREFIX}${observed.metricsUrl}\n`);
  let running: Closable;
  try {
    running = await start();
  } catch (err) {
    cleanUp();
    await observed?.shutdown();
    throw err;
  }
  let exitCode = 0;
  try {
    const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    const ready = running.whenReady ? running.whenReady(readyTimeoutMs > 0 ? readyTimeoutMs : undefined).then(() => 'ready' as const) : Promise.resolve('ready' as const);
    if ((await Promise.race([ready, stopped])) === 'ready') {
      process.stdout.write(`${READY_PREFIX}${running.url}\n`);
      observed?.afterReady();
      await stopped;
    }
  } catch (err) {
    // Never ready within the bound: say what it waited for, stop, and let the supervisor restart it.
    const details = (err as { details?: unknown } | null)?.details;
    const reason = typeof details === 'string' ? details : err instanceof Error ? err.message : String(err);
    process.stderr.write(`txmesh: ${options.role ?? 'this process'} is not ready, stopping: ${reason}\n`);
    exitCode = 1;
  } finally {
    cleanUp();
  }
  await running.close();
  await observed?.shutdown();
  return exitCode;
}

/** An on/off environment switch, on unless set to off (or 0/false/no). */
export function envSwitch(name: string, onInvalid: (message: string) => Error): boolean {
  const value = process.env[name]?.trim().toLowerCase();
  if (value === undefined || value === '' || value === 'on' || value === '1' || value === 'true' || value === 'yes') return true;
  if (value === 'off' || value === '0' || value === 'false' || value === 'no') return false;
  throw onInvalid(`${name} must be on or off, got "${process.env[name]}"`);
}
