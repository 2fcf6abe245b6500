/** Shared helpers for the cross-process tests: a cluster with a small catalog, orders, and polling. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import Database from 'better-sqlite3';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { Cluster, fetchSummaries, sleep, type ClusterOptions } from '@txmesh/lab';
import { ECOMMERCE_SERVICES, orderRequest, type EcommerceService, type ServiceSummary } from '@txmesh/example-ecommerce';
import type { BeginTransactionRequest } from '@txmesh/protocol';

/** The installed `txmesh` command (compiled JavaScript), as a user runs it. */
export const TXMESH_BIN = join(dirname(createRequire(import.meta.url).resolve('txmesh/package.json')), 'bin', 'txmesh.mjs');

export const SMALL_CATALOG = { skus: 5, stockPerSku: 50, accounts: 5, balancePerAccount: 1000 };

/**
 * The client headers of the cluster the running test started last: the cluster has credentials (a fresh
 * secret per cluster), and tests run one at a time within a file, so postJson and getWithCredential use them.
 */
let currentClientHeaders: Record<string, string> = {};

/** For a test file that starts its own cluster: postJson and getWithCredential then use its client credential. */
export function useCredentialsOf(cluster: Cluster): void {
  currentClientHeaders = cluster.clientHeaders;
}

/** Starts a cluster with the small catalog; stops it and removes its data when the test ends. */
export async function startTestCluster(t: TestContext, options: ClusterOptions = {}): Promise<Cluster> {
  const cluster = await Cluster.start({ catalog: SMALL_CATALOG, ...options, env: { TXMESH_LOG_LEVEL: 'warn', ...options.env } });
  currentClientHeaders = cluster.clientHeaders;
  t.after(async () => {
    await cluster.stop();
    cluster.removeData();
  });
  return cluster;
}

/** An order that commits with the small catalog unless stock or money runs out. */
export function goodOrder(orderId: string, timeoutMs = 2000): BeginTransactionRequest {
  return orderRequest({ orderId, sku: 'sku-1', qty: 1, account: 'acct-1', amount: 10, address: '1 Loop Road' }, timeoutMs);
}

/** An order shipping refuses (no address): aborted with reason UNDELIVERABLE, a business refusal. */
export function refusedOrder(orderId: string, timeoutMs = 2000): BeginTransactionRequest {
  return orderRequest({ orderId, sku: 'sku-1', qty: 1, account: 'acct-1', amount: 10, address: '' }, timeoutMs);
}

export function serviceUrls(cluster: Cluster): Map<EcommerceService, string> {
  return new Map([...cluster.services].map(([name, member]) => [name, member.url]));
}

export async function summaries(cluster: Cluster): Promise<Map<EcommerceService, ServiceSummary>> {
  return new Map((await fetchSummaries(serviceUrls(cluster))).map((summary) => [summary.service, summary]));
}

/** Polls `probe` until it returns true or the time is up; answers whether it did. */
export async function eventually(probe: () => Promise<boolean>, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return true;
    } catch {
      // the member may be restarting
    }
    if (Date.now() > deadline) return false;
    await sleep(stepMs);
  }
}

/** POSTs JSON with the current cluster's client credential. */
export async function postJson(url: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...currentClientHeaders }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

/** One `txmesh` process started as an operator would, with everything it printed so far. */
export interface RoleProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** The URL of its TXMESH_READY line, once printed. */
  readyUrl(): string | undefined;
  /** Resolves with the exit code once the process is gone. */
  exited: Promise<number | null>;
}

/** Spawns `txmesh <args>`; SIGKILLs it when the test ends. `stdin` is written and closed when given. */
export function spawnTxmesh(t: TestContext, args: string[], options: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): RoleProcess {
  const child = spawn(process.execPath, [TXMESH_BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdin!.on('error', () => {});
  if (options.stdin !== undefined) child.stdin!.end(options.stdin);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    readyUrl: () => /^TXMESH_READY (\S+)$/m.exec(stdout)?.[1],
    exited,
  };
}

/** Waits for the TXMESH_READY line; fails with what the process printed if it exits or takes too long. */
export async function waitReady(role: RoleProcess, timeoutMs = 30_000): Promise<string> {
  const ready = await eventually(async () => role.readyUrl() !== undefined || role.child.exitCode !== null, timeoutMs, 20);
  const url = role.readyUrl();
  if (!ready || url === undefined) throw new Error(`no TXMESH_READY (exit ${role.child.exitCode}); stderr:\n${role.stderr()}`);
  return url;
}

/** Runs `txmesh <args>` to its end. */
export async function runTxmesh(t: TestContext, args: string[], stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const role = spawnTxmesh(t, args, stdin === undefined ? {} : { stdin });
  const code = await role.exited;
  return { code, stdout: role.stdout(), stderr: role.stderr() };
}

/** A loopback port nothing listens on now (handed out by the OS, then freed), for a member started later. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The pino JSON lines of a process's stderr (other lines skipped). */
export function logLines(stderr: string): Record<string, unknown>[] {
  return stderr.split('\n').flatMap((line) => {
    try {
      const parsed = JSON.parse(line) as unknown;
      return typeof parsed === 'object' && parsed !== null ? [parsed as Record<string, unknown>] : [];
    } catch {
      return [];
    }
  });
}

/** GETs with the current cluster's client credential (coordinator routes other than health and stats need it). */
export function getWithCredential(url: string): Promise<Response> {
  return fetch(url, { headers: currentClientHeaders });
}

/** Branch rows (txm_branches) in every example service's database, read through a second connection. */
export function branchRowCount(dataDir: string): number {
  let rows = 0;
  for (const service of ECOMMERCE_SERVICES) {
    const db = new Database(join(dataDir, `${service}.db`), { readonly: true });
    try {
      rows += (db.prepare('SELECT COUNT(*) AS n FROM txm_branches').get() as { n: number }).n;
    } finally {
      db.close();
    }
  }
  return rows;
}
