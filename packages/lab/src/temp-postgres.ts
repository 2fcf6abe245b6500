/**
 * A throw-away PostgreSQL server for tests, `txmesh demo --pg` and `txmesh chaos --pg`: initdb in a
 * temporary folder, started by pg_ctl on a free 127.0.0.1 port with max_prepared_transactions set, and
 * stopped and deleted by stop(). PostgreSQL refuses to run as root, so as root (CI, this workplace) the
 * server runs as the unprivileged user `nobody` through setpriv.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { TxmeshError } from '@txmesh/protocol';

const run = promisify(execFile);

/** Debian's folder for PostgreSQL 15 (scripts/test-tools/postgresql.sh installs it). */
export const DEFAULT_PG_BIN = '/usr/lib/postgresql/15/bin';
const UNPRIVILEGED_UID = 65534;
const UNPRIVILEGED_GID = 65534;

export interface TempPostgresOptions {
  /** Folder of initdb, pg_ctl and postgres; default TXMESH_PG_BIN or Debian's PostgreSQL 15 folder. */
  binDir?: string;
  /** 0 turns native two-phase commit off (to test the refusal); default 64. */
  maxPreparedTransactions?: number;
}

export interface TempPostgres {
  host: string;
  port: number;
  /** postgres://postgres@127.0.0.1:<port>/postgres (trust authentication on loopback only). */
  connectionString: string;
  dataDir: string;
  /** Stops the server (fast shutdown) and deletes its folder; safe to call twice. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export function resolvePgBin(binDir?: string): string {
  const dir = binDir ?? process.env.TXMESH_PG_BIN ?? DEFAULT_PG_BIN;
  for (const program of ['initdb', 'pg_ctl', 'postgres']) {
    if (!fs.existsSync(path.join(dir, program))) throw new TxmeshError('TXM_PG_MISSING', `${program} is not in ${dir}`);
  }
  return dir;
}

/** The command line that runs a PostgreSQL program: as `nobody` when this process is root. */
function asServerUser(program: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [program, args];
  return ['setpriv', [`--reuid=${UNPRIVILEGED_UID}`, `--regid=${UNPRIVILEGED_GID}`, '--clear-groups', '--', program, ...args]];
}

/** Runs in `cwd`, a folder the server user can enter (the caller's may be root's, e.g. a CI checkout under /root). */
async function runPg(binDir: string, program: string, args: string[], cwd: string): Promise<void> {
  const [file, argv] = asServerUser(path.join(binDir, program), args);
  await run(file, argv, { cwd, timeout: 120_000, env: { ...process.env, LC_ALL: 'C', TZ: 'UTC' } });
}

/**
 * A detached shell that outlives this process: once this process is gone (a test file killed at its time
 * limit, a SIGKILL), it stops the server and deletes its folder, so no server is ever left running.
 */
function startWatchdog(binDir: string, dataDir: string, root: string): number | undefined {
  const [stopFile, stopArgs] = asServerUser(path.join(binDir, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate']);
  const quote = (arg: string): string => `'${arg.replaceAll("'", "'\\''")}'`;
  const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ${[stopFile, ...stopArgs].map(quote).join(' ')} >/dev/null 2>&1; rm -rf ${quote(root)}`;
  const watchdog = spawn('sh', ['-c', script], { cwd: '/', detached: true, stdio: 'ignore' });
  watchdog.unref();
  return watchdog.pid;
}

export async function startTempPostgres(options: TempPostgresOptions = {}): Promise<TempPostgres> {
  const binDir = resolvePgBin(options.binDir);
  const maxPrepared = options.maxPreparedTransactions ?? 64;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'txm-pg-'));
  const dataDir = path.join(root, 'data');
  fs.mkdirSync(dataDir, { mode: 0o700 });
  if (process.getuid?.() === 0) {
    fs.chownSync(root, UNPRIVILEGED_UID, UNPRIVILEGED_GID);
    fs.chownSync(dataDir, UNPRIVILEGED_UID, UNPRIVILEGED_GID);
  }
  let started = false;
  let watchdog: number | undefined;
  const stop = async (): Promise<void> => {
    if (started) {
      started = false;
      await runPg(binDir, 'pg_ctl', ['stop', '-D', dataDir, '-m', 'fast', '-w'], root).catch(() => undefined);
    }
    if (watchdog !== undefined) {
      // Its own process group (detached): ends the shell and its sleep.
      try {
        process.kill(-watchdog, 'SIGKILL');
      } catch {
        // already gone
      }
      watchdog = undefined;
    }
    fs.rmSync(root, { recursive: true, force: true });
  };
  try {
    await runPg(binDir, 'initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-instructions'], root);
    const port = await freePort();
    // The socket lives in the data folder, so nothing outside it (/var/run/postgresql) is needed.
    const settings = [
      `-c listen_addresses=127.0.0.1`,
      `-c port=${port}`,
      `-c unix_socket_directories=${dataDir}`,
      `-c max_prepared_transactions=${maxPrepared}`,
      `-c max_connections=100`,
      `-c shared_buffers=16MB`,
    ].join(' ');
    await runPg(binDir, 'pg_ctl', ['start', '-D', dataDir, '-w', '-t', '60', '-l', path.join(dataDir, 'server.log'), '-o', settings], root);
    started = true;
    watchdog = startWatchdog(binDir, dataDir, root);
    return { host: '127.0.0.1', port, connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`, dataDir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
