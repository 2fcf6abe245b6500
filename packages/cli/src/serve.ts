/**
 * Runs one long-lived role (coordinator shard, sidecar, example service) as this process: prints
 * "TXMESH_READY <url>" on stdout once it is ready, and closes cleanly on SIGTERM/SIGINT.
 */
export interface Closable {
  url: string;
  close(): Promise<void>;
}

export const READY_PREFIX = 'TXMESH_READY ';

export async function serve(start: () => Promise<Closable>): Promise<number> {
  const running = await start();
  process.stdout.write(`${READY_PREFIX}${running.url}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
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
  // A resumed stdin would keep the event loop alive after close.
  if (process.env.TXMESH_EXIT_WITH_PARENT === '1') process.stdin.destroy();
  await running.close();
  return 0;
}

/** An on/off environment switch, on unless set to off (or 0/false/no). */
export function envSwitch(name: string, onInvalid: (message: string) => Error): boolean {
  const value = process.env[name]?.trim().toLowerCase();
  if (value === undefined || value === '' || value === 'on' || value === '1' || value === 'true' || value === 'yes') return true;
  if (value === 'off' || value === '0' || value === 'false' || value === 'no') return false;
  throw onInvalid(`${name} must be on or off, got "${process.env[name]}"`);
}
