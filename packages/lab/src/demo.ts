/**
 * `txmesh demo`: starts the e-commerce cluster on loopback, places orders concurrently, prints a
 * summary, checks that every service agrees and that stock and money are conserved, and stops.
 */
import { DEFAULT_CATALOG, orderRequest, randomOrder, seededRandom, type CatalogOptions, type EcommerceService } from '@txmesh/example-ecommerce';
import { createTxmeshClient } from '@txmesh/client';
import { Outcome, TxmeshError, type BeginTransactionRequest, type TransactionResult } from '@txmesh/protocol';
import { Cluster, sleep } from './cluster.ts';
import type { TempPostgresOptions } from './temp-postgres.ts';
import { verifyCluster, waitForQuiescence, type VerifyReport } from './verify.ts';

export interface DemoOptions {
  orders: number;
  concurrency: number;
  shards: number;
  json: boolean;
  seed: number;
  catalog?: Partial<CatalogOptions>;
  /** Payment on a throw-away PostgreSQL server in native two-phase-commit mode (see Cluster's `postgres`). */
  postgres?: TempPostgresOptions;
  /** Where progress and the human summary go. */
  out: NodeJS.WritableStream;
  progress: NodeJS.WriteStream;
}

export interface DemoSummary extends Omit<VerifyReport, 'problems'> {
  orders: number;
  concurrency: number;
  shards: number;
  committed: number;
  aborted: number;
  abortedByReason: Record<string, number>;
  clientErrors: number;
  /** Transactions run: orders plus the retries of orders that lost a lock race. */
  transactions: number;
  conflictRetries: number;
  durationSec: number;
  throughputTps: number;
  committedTps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  problems: string[];
}

/** Aborts caused by concurrency, not by the business: the order is worth placing again. */
const RETRYABLE_REASONS = new Set(['LOCK_CONFLICT', 'LOCK_TIMEOUT', 'DEADLOCK']);
const MAX_RUNS_PER_ORDER = 4;

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

class ProgressBar {
  readonly #stream: NodeJS.WriteStream;
  readonly #total: number;
  #lastDraw = 0;
  #lastQuarter = -1;

  constructor(stream: NodeJS.WriteStream, total: number) {
    this.#stream = stream;
    this.#total = total;
  }

  update(done: number, committed: number, aborted: number): void {
    const now = Date.now();
    if (this.#stream.isTTY) {
      if (now - this.#lastDraw < 80 && done < this.#total) return;
      this.#lastDraw = now;
      const width = 30;
      const filled = Math.round((done / this.#total) * width);
      this.#stream.write(`\r  [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${this.#total}  committed ${committed}  aborted ${aborted}`);
      if (done === this.#total) this.#stream.write('\n');
    } else {
      const quarter = Math.floor((done / this.#total) * 4);
      if (quarter > this.#lastQuarter) {
        this.#lastQuarter = quarter;
        this.#stream.write(`  progress ${done}/${this.#total}  committed ${committed}  aborted ${aborted}\n`);
      }
    }
  }
}

export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const say = (line: string): void => void options.out.write(`${line}\n`);
  const catalog: CatalogOptions = { ...DEFAULT_CATALOG, ...options.catalog };
  say(`txmesh demo: starting ${options.shards} coordinator shard(s), 4 services and 4 sidecars on 127.0.0.1 ...`);
  // TXMESH_PROFILE_DIR=<dir> writes a V8 CPU profile of every member when the demo stops them.
  const profileDir = process.env.TXMESH_PROFILE_DIR;
  const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  if (options.postgres) say('  payment runs on PostgreSQL (native two-phase commit: PREPARE TRANSACTION before its yes), the others on SQLite');
  const cluster = await Cluster.start({ shards: options.shards, catalog, nodeArgs, ...(options.postgres ? { postgres: options.postgres } : {}) });
  try {
    say(`  data in ${cluster.dataDir}`);
    say(`  coordinators ${cluster.coordinatorUrls.join(', ')}`);
    say(`  dashboard    ${cluster.coordinatorUrls.map((url) => `${url}/dashboard`).join(', ')}`);
    for (const [name, sidecar] of cluster.sidecars) say(`  ${name.padEnd(9)} service ${cluster.services.get(name)!.url}  sidecar ${sidecar.url}`);
    say(`placing ${options.orders} orders, ${options.concurrency} at a time ...`);

    const client = createTxmeshClient({ coordinatorUrls: cluster.coordinatorUrls, connections: options.concurrency, ...cluster.clientOptions });
    const rng = seededRandom(options.seed);
    const requests = Array.from({ length: options.orders }, (_, i) => orderRequest(randomOrder(rng, catalog, `order-${i + 1}`)));
    const heard = new Map<string, Outcome>();
    const abortedByReason: Record<string, number> = {};
    const latencies: number[] = [];
    let committed = 0;
    let aborted = 0;
    let clientErrors = 0;
    let next = 0;
    const bar = new ProgressBar(options.progress, options.orders);
    const started = performance.now();

    let transactions = 0;
    let conflictRetries = 0;

    /** One transaction; transport failures are retried with the same key, which never runs it twice. */
    const runOnce = async (request: BeginTransactionRequest): Promise<TransactionResult | undefined> => {
      for (let attempt = 1; ; attempt++) {
        const t0 = performance.now();
        try {
          const result = await client.transaction(request);
          latencies.push(performance.now() - t0);
          heard.set(result.txId, result.outcome);
          transactions++;
          return result;
        } catch (err) {
          if (attempt >= 3) {
            clientErrors++;
            if (clientErrors <= 3) say(`  ${request.idempotencyKey} failed: ${err instanceof TxmeshError ? `${err.code} ${err.details ?? ''}` : String(err)}`);
            return undefined;
          }
          await sleep(50 * attempt);
        }
      }
    };

    const placeOrder = async (index: number): Promise<void> => {
      // Like any application on a serializable store, the shop retries an order that lost a lock
      // race (a new transaction, so a new key); business refusals are final.
      for (let run = 1; ; run++) {
        const result = await runOnce({ ...requests[index]!, idempotencyKey: `demo-${options.seed}-${index}-${run}` });
        if (result === undefined) return;
        if (result.outcome === Outcome.ABORTED && RETRYABLE_REASONS.has(result.reason ?? '') && run < MAX_RUNS_PER_ORDER) {
          conflictRetries++;
          await sleep(5 + Math.random() * 20 * run);
          continue;
        }
        if (result.outcome === Outcome.COMMITTED) committed++;
        else {
          aborted++;
          const reason = result.reason ?? 'UNKNOWN';
          abortedByReason[reason] = (abortedByReason[reason] ?? 0) + 1;
        }
        return;
      }
    };

    const worker = async (): Promise<void> => {
      while (next < requests.length) {
        await placeOrder(next++);
        bar.update(committed + aborted + clientErrors, committed, aborted);
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency, options.orders) }, worker));
    const durationSec = (performance.now() - started) / 1000;
    await client.close();

    say('waiting for commit/rollback delivery to finish, then checking every service ...');
    const quiet = await waitForQuiescence(sidecarUrls(cluster), cluster.coordinatorUrls, 30_000);
    const report = await verifyCluster(sidecarUrls(cluster), heard);
    if (!quiet) report.problems.push('cluster did not quiesce within 30 s');
    latencies.sort((a, b) => a - b);
    const round = (x: number): number => Math.round(x * 100) / 100;
    return {
      orders: options.orders,
      concurrency: options.concurrency,
      shards: options.shards,
      committed,
      aborted,
      abortedByReason,
      clientErrors,
      durationSec: round(durationSec),
      transactions,
      conflictRetries,
      throughputTps: round(transactions / durationSec),
      committedTps: round(committed / durationSec),
      p50Ms: round(percentile(latencies, 50)),
      p99Ms: round(percentile(latencies, 99)),
      maxMs: round(latencies.at(-1) ?? 0),
      ...report,
      invariantsOk: report.invariantsOk && quiet && clientErrors === 0,
    };
  } finally {
    await cluster.stop();
    cluster.removeData();
  }
}

/** Service admin routes are reached through each sidecar, which proxies ordinary traffic. */
function sidecarUrls(cluster: Cluster): Map<EcommerceService, string> {
  return new Map([...cluster.sidecars].map(([name, member]) => [name, member.url]));
}

export function formatSummary(s: DemoSummary): string {
  const reasons = Object.entries(s.abortedByReason).map(([r, n]) => `${r} ${n}`).join(', ') || 'none';
  return [
    '',
    `orders       ${s.orders} (concurrency ${s.concurrency}, ${s.shards} shard(s))`,
    `committed    ${s.committed}`,
    `aborted      ${s.aborted}  (${reasons})`,
    `errors       ${s.clientErrors}`,
    `transactions ${s.transactions} (${s.conflictRetries} retries of orders that lost a lock race)`,
    `throughput   ${s.throughputTps} tx/s  (${s.committedTps} committed orders/s) over ${s.durationSec} s`,
    `latency      p50 ${s.p50Ms} ms  p99 ${s.p99Ms} ms  max ${s.maxMs} ms`,
    `agreement    ${s.atomicityViolations} atomicity violations, ${s.lostCommits} lost commits, ${s.abortedButCommitted} aborted-but-committed, ${s.preparedAfterQuiescence} left prepared`,
    `invariants   ${s.invariantsOk ? 'OK: every service agrees; stock and money are conserved' : 'FAILED'}`,
    ...s.problems.slice(0, 10).map((p) => `  problem: ${p}`),
  ].join('\n');
}
