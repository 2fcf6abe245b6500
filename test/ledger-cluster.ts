/**
 * A small cluster over loopback HTTP for the isolation tests, in this process: coordinator shards, and the
 * lab's bank services (participant SDK, real SQLite files; packages/lab/src/bank-service.ts) behind real
 * sidecars.
 *
 * A prepare batch whose `lock` operation carries `afterHeld: true` is held back until another transaction
 * holds (durably prepared) every key it writes, one with `delayMs` for that long: the tests use them to make
 * transactions reach services in opposite orders whatever the machine's load.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startCoordinator } from '@txmesh/coordinator';
import { buildBankService, type BankService } from '@txmesh/lab';
import { startSidecar } from '@txmesh/sidecar';
import type { DeadlockMode } from '@txmesh/protocol';

export interface LedgerClusterOptions {
  shards: number;
  services: string[];
  deadlock: DeadlockMode;
  lockWaitMs: number;
  /** Default true; false declares no read or write keys at all (the serializability test's red run). */
  locking?: boolean;
  /** Accounts created in every service, each with this balance. */
  accounts?: { count: number; balance: number };
}

export interface LedgerService extends BankService {
  name: string;
  url: string;
}

export interface LedgerCluster {
  coordinatorUrls: string[];
  services: Map<string, LedgerService>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What a batch waits for before the service handles it: keys held by others (`afterHeld`), a delay (`delayMs`). */
function holdBack(body: unknown): { keys: string[]; delayMs: number } {
  const items = (body as { items?: unknown } | undefined)?.items;
  const out = { keys: [] as string[], delayMs: 0 };
  if (!Array.isArray(items)) return out;
  for (const item of items as { action?: unknown; operations?: { args?: { afterHeld?: unknown; write?: unknown; delayMs?: unknown } }[] }[]) {
    if (item.action !== 'prepare' || !Array.isArray(item.operations)) continue;
    for (const op of item.operations) {
      if (op.args?.afterHeld === true && Array.isArray(op.args.write)) out.keys.push(...(op.args.write as string[]));
      if (typeof op.args?.delayMs === 'number') out.delayMs = Math.max(out.delayMs, op.args.delayMs);
    }
  }
  return out;
}

const AFTER_HELD_LIMIT_MS = 10_000;

async function startLedgerService(name: string, dir: string, options: LedgerClusterOptions): Promise<LedgerService> {
  const service = buildBankService(name, {
    dbPath: join(dir, `${name}.db`),
    deadlock: options.deadlock,
    lockWaitMs: options.lockWaitMs,
    accounts: options.accounts ?? { count: 0, balance: 0 },
    locking: options.locking ?? true,
    // The hold-backs below are a hook on the batch route: every batch must come through it.
    batchChannel: false,
    beforeRoutes(app) {
      app.addHook('preHandler', async (request) => {
        const held = service.db.prepare<[string], { n: number }>('SELECT COUNT(*) AS n FROM txm_key_locks WHERE key = ?');
        const { keys, delayMs } = holdBack(request.body);
        if (delayMs > 0) await sleep(delayMs);
        const until = Date.now() + AFTER_HELD_LIMIT_MS;
        while (keys.some((key) => held.get(key)!.n === 0) && Date.now() < until) await sleep(5);
      });
    },
  });
  const url = await service.app.listen({ host: '127.0.0.1', port: 0 });
  return { name, url, ...service };
}

/** Starts shards, services and sidecars; everything stops and its files go when the test ends. */
export async function startLedgerCluster(t: TestContext, options: LedgerClusterOptions): Promise<LedgerCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-ledger-'));
  const closers: (() => Promise<void> | void)[] = [];
  t.after(async () => {
    for (const close of closers.reverse()) await close();
    rmSync(dir, { recursive: true, force: true });
  });
  const coordinators = await Promise.all(
    Array.from({ length: options.shards }, (_, shard) =>
      startCoordinator({ shard, shards: options.shards, dataDir: dir, deadlock: options.deadlock, logLevel: 'error' }),
    ),
  );
  for (const c of coordinators) closers.push(() => c.close());
  const coordinatorUrls = coordinators.map((c) => c.url);
  const services = new Map<string, LedgerService>();
  for (const name of options.services) {
    const service = await startLedgerService(name, dir, options);
    closers.push(() => service.close());
    const sidecar = await startSidecar({ service: name, serviceUrl: service.url, coordinatorUrls, dataDir: dir, port: 0, logLevel: 'error' });
    closers.push(() => sidecar.close());
    services.set(name, service);
  }
  await waitForRegistrations(coordinatorUrls, options.services);
  return { coordinatorUrls, services };
}

async function waitForRegistrations(urls: string[], names: string[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (const url of urls) {
    for (;;) {
      const body = (await (await fetch(`${url}/v1/services`)).json()) as { services: { service: string }[] };
      if (names.every((n) => body.services.some((s) => s.service === n))) break;
      if (Date.now() > deadline) throw new Error(`services did not register with ${url}`);
      await sleep(20);
    }
  }
}

export interface TxOutcome {
  txId: string;
  outcome: 'committed' | 'aborted';
  reason?: string;
  durationMs: number;
}

/** Begins a transaction at one shard (any shard accepts a request without an idempotency key). */
export async function begin(coordinatorUrl: string, body: unknown): Promise<TxOutcome> {
  const res = await fetch(`${coordinatorUrl}/v1/transactions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const answer = (await res.json()) as TxOutcome & { error?: { code: string; message: string } };
  if (answer.error) throw new Error(`${answer.error.code}: ${answer.error.message}`);
  return answer;
}
