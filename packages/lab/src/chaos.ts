/**
 * `txmesh chaos`: runs the e-commerce cluster with a fault proxy on every link, places orders at full
 * speed, and meanwhile SIGKILLs and restarts random coordinator shards, sidecars and services and cuts
 * and heals links with random fault modes. At the end it heals everything, waits for quiescence and
 * checks that every service agrees on every transaction, that every commit a client heard is applied
 * everywhere, that nothing is left prepared and that stock and money are conserved.
 *
 * Clients resend the same idempotencyKey until they learn the outcome (a coordinator down, an answer
 * lost), so "committed as heard by a client" is exact: only answers actually received are counted.
 */
import { DEFAULT_CATALOG, orderRequest, randomOrder, seededRandom, type CatalogOptions, type EcommerceService } from '@txmesh/example-ecommerce';
import { createTxmeshClient } from '@txmesh/client';
import { Outcome, Paths, TxmeshError, type BeginTransactionRequest, type TransactionResult } from '@txmesh/protocol';
import { Cluster, sleep, type Member } from './cluster.ts';
import type { TempPostgresOptions } from './temp-postgres.ts';
import { FaultProxy } from './fault-proxy.ts';
import { fetchSummaries, verifyCluster, waitForQuiescence } from './verify.ts';

export interface ChaosOptions {
  durationSec: number;
  seed: number;
  shards: number;
  concurrency: number;
  catalog?: Partial<CatalogOptions>;
  /** Mean gap between two faults (a kill or a link fault), in ms. */
  faultEveryMs?: number;
  /** Keep injecting faults past the duration (up to three times it) until this many kills happened. */
  minKills?: number;
  /** Progress and event lines. */
  progress: NodeJS.WritableStream;
  /** Payment on a throw-away PostgreSQL server in native two-phase-commit mode (see Cluster's `postgres`). */
  postgres?: TempPostgresOptions;
}

export interface ChaosSummary {
  durationSec: number;
  shards: number;
  concurrency: number;
  seed: number;
  /** Orders whose outcome a client heard (each one transaction from the client's point of view). */
  transactions: number;
  committed: number;
  aborted: number;
  abortedByReason: Record<string, number>;
  /** Orders whose outcome was still unknown when the run gave up waiting (should be 0). */
  unknownOutcomes: number;
  /** Orders refused with a final error (bad request, idempotency conflict): nothing ran (should be 0). */
  refused: number;
  /** Resends of the same idempotencyKey after a lost answer or a coordinator being down. */
  clientResends: number;
  kills: number;
  killsByRole: Record<string, number>;
  killsByMember: Record<string, number>;
  restartFailures: number;
  partitions: number;
  partitionsByMode: Record<string, number>;
  atomicityViolations: number;
  lostCommits: number;
  abortedButCommitted: number;
  /**
   * Transactions committed at the services that no client heard as committed. Every client learns its
   * outcome, so any such commit means an idempotencyKey ran twice (should be 0).
   */
  committedUnheard: number;
  /** Branches prepared at a service, records at a sidecar, work in flight or in doubt at a shard, after heal. */
  inDoubtAfterHeal: number;
  /** With --pg: transactions still in PostgreSQL's pg_prepared_xacts after heal (should be 0); absent without. */
  pgPreparedAfterHeal?: number;
  quiesced: boolean;
  invariantsOk: boolean;
  problems: string[];
}

/** Transaction time-out of each order: short, so a partitioned branch aborts quickly. */
const ORDER_TIMEOUT_MS = 2000;
/** After the run, how long clients keep resending to learn their outcomes, and how long to wait for quiet. */
const DRAIN_MS = 60_000;
const QUIESCE_MS = 90_000;
/** Errors after which the outcome is unknown or nothing ran: resend the same key. */
const RESEND_CODES = new Set(['TXM_COORDINATOR_UNREACHABLE', 'TXM_SHUTTING_DOWN', 'TXM_OUTCOME_UNKNOWN', 'TXM_OVERLOADED', 'TXM_UNKNOWN_SERVICE', 'TXM_INTERNAL']);

type Rng = () => number;
const between = (rng: Rng, min: number, max: number): number => Math.floor(min + rng() * (max - min));
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;

export async function runChaos(options: ChaosOptions): Promise<ChaosSummary> {
  const say = (line: string): void => void options.progress.write(`${line}\n`);
  const catalog: CatalogOptions = { ...DEFAULT_CATALOG, ...options.catalog };
  const chaosRng = seededRandom(options.seed * 7919 + 1);
  const orderRng = seededRandom(options.seed);
  const faultEveryMs = options.faultEveryMs ?? 1000;
  say(`txmesh chaos: ${options.shards} shard(s), 4 services, 4 sidecars, a fault proxy on every link; ${options.durationSec} s, seed ${options.seed}`);
  const cluster = await Cluster.start({ shards: options.shards, catalog, faultProxies: true,
    env: { TXMESH_LOG_LEVEL: process.env.TXMESH_LOG_LEVEL ?? 'warn' },
    ...(options.postgres ? { postgres: options.postgres } : {}),
  });
  const problems: string[] = [];
  let stopClientLinks = async (): Promise<unknown> => undefined;
  try {
    say(`  data and member logs in ${cluster.dataDir}`);
    // The client's own links get faults too: an answer lost on the way back must be recovered by resending the key.
    const clientLinks = await Promise.all(cluster.coordinators.map((c) => FaultProxy.start({ target: c.url })));
    stopClientLinks = () => Promise.all(clientLinks.map((p) => p.close()));
    const client = createTxmeshClient({ coordinatorUrls: clientLinks.map((p) => p.url), ...cluster.clientOptions });
    const heard = new Map<string, Outcome>();
    const abortedByReason: Record<string, number> = {};
    let committed = 0;
    let aborted = 0;
    let unknownOutcomes = 0;
    let clientResends = 0;
    let placing = true;
    let orderCount = 0;
    const drainDeadline = { at: Infinity };

    let refused = 0;
    /** Resends the same key until the outcome is heard; 'unknown' if it never was before the drain deadline. */
    const learnOutcome = async (request: BeginTransactionRequest): Promise<TransactionResult | 'refused' | 'unknown'> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await client.transaction(request);
        } catch (err) {
          const code = err instanceof TxmeshError ? err.code : undefined;
          if (code !== undefined && !RESEND_CODES.has(code)) {
            if (problems.length < 20) problems.push(`${request.idempotencyKey}: refused with ${code} ${err instanceof TxmeshError ? (err.details ?? '') : ''}`);
            return 'refused';
          }
          if (Date.now() > drainDeadline.at) return 'unknown';
          clientResends++;
          await sleep(Math.min(1000, 25 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random()));
        }
      }
    };

    const worker = async (): Promise<void> => {
      while (placing) {
        const index = ++orderCount;
        const request = { ...orderRequest(randomOrder(orderRng, catalog, `chaos-order-${index}`), ORDER_TIMEOUT_MS), idempotencyKey: `chaos-${options.seed}-${index}` };
        const result = await learnOutcome(request);
        if (result === 'refused' || result === 'unknown') {
          if (result === 'refused') refused++;
          else unknownOutcomes++;
          continue;
        }
        heard.set(result.txId, result.outcome);
        if (result.outcome === Outcome.COMMITTED) committed++;
        else {
          aborted++;
          // Reasons are tokens (addresses stay in details), so they count by kind as they are.
          const reason = result.reason ?? 'UNKNOWN';
          abortedByReason[reason] = (abortedByReason[reason] ?? 0) + 1;
        }
      }
    };

    // ---- the faults
    const members: Member[] = [...cluster.coordinators, ...cluster.services.values(), ...cluster.sidecars.values()];
    const links: [string, FaultProxy][] = [...cluster.links.entries(), ...clientLinks.map((p, i): [string, FaultProxy] => [`client->coordinator-${i}`, p])];
    const down = new Set<Member>();
    const faulted = new Set<FaultProxy>();
    const pendingRecoveries: Promise<void>[] = [];
    const killsByRole: Record<string, number> = {};
    const killsByMember: Record<string, number> = {};
    const partitionsByMode: Record<string, number> = {};
    let kills = 0;
    let partitions = 0;
    let restartFailures = 0;

    const restart = async (member: Member): Promise<void> => {
      for (let attempt = 1; attempt <= 5; attempt++) {
        try {
          await member.start();
          return;
        } catch (err) {
          if (attempt === 5) {
            restartFailures++;
            problems.push(`${member.name} did not restart: ${(err as Error).message}`);
          }
          await sleep(500 * attempt);
        }
      }
    };

    const killOne = (): void => {
      const candidates = members.filter((m) => !down.has(m) && m.running);
      // At most two members down at once, so the cluster keeps making some progress.
      if (candidates.length === 0 || down.size >= 2) return;
      const member = pick(chaosRng, candidates);
      const downMs = between(chaosRng, 200, 1500);
      down.add(member);
      kills++;
      killsByRole[member.role] = (killsByRole[member.role] ?? 0) + 1;
      killsByMember[member.name] = (killsByMember[member.name] ?? 0) + 1;
      say(`  kill ${member.name} (down ${downMs} ms)`);
      pendingRecoveries.push(
        (async () => {
          await member.kill('SIGKILL');
          await sleep(downMs);
          await restart(member);
          down.delete(member);
        })(),
      );
    };

    const cutOne = (): void => {
      const candidates = links.filter(([, proxy]) => !faulted.has(proxy));
      if (candidates.length === 0) return;
      const [name, proxy] = pick(chaosRng, candidates);
      const roll = chaosRng();
      let mode: string;
      if (roll < 0.25) {
        const direction = pick(chaosRng, ['toTarget', 'toClient', undefined] as const);
        const ms = between(chaosRng, 50, 3000);
        proxy.delay(ms, direction);
        mode = `delay ${ms} ms ${direction ?? 'both ways'}`;
      } else if (roll < 0.55) {
        const direction = pick(chaosRng, ['toTarget', 'toClient'] as const);
        proxy.drop(direction);
        mode = `drop ${direction}`;
      } else if (roll < 0.8) {
        proxy.blackhole();
        mode = 'blackhole';
      } else {
        proxy.reset();
        mode = 'reset';
      }
      const kind = mode.split(' ')[0]!;
      partitionsByMode[kind] = (partitionsByMode[kind] ?? 0) + 1;
      partitions++;
      faulted.add(proxy);
      const healMs = between(chaosRng, 300, 2500);
      say(`  cut ${name}: ${mode} (for ${healMs} ms)`);
      pendingRecoveries.push(
        (async () => {
          await sleep(healMs);
          proxy.heal();
          faulted.delete(proxy);
        })(),
      );
    };

    const started = Date.now();
    const endAt = started + options.durationSec * 1000;
    // On a loaded machine restarts are slow and kills wait for them: a kill quota may need extra time.
    const hardEndAt = started + options.durationSec * 3000;
    const keepGoing = (): boolean => Date.now() < endAt || (kills < (options.minKills ?? 0) && Date.now() < hardEndAt);
    const workers = Array.from({ length: options.concurrency }, () => worker());
    let lastReport = started;
    while (keepGoing()) {
      await sleep(between(chaosRng, faultEveryMs / 2, (faultEveryMs * 3) / 2));
      if (!keepGoing()) break;
      if (chaosRng() < 0.5) killOne();
      else cutOne();
      if (Date.now() - lastReport > 5000) {
        lastReport = Date.now();
        say(`  ${Math.round((lastReport - started) / 1000)} s: committed ${committed}, aborted ${aborted}, kills ${kills}, link faults ${partitions}`);
      }
    }

    say('stopping faults: restarting every member and healing every link ...');
    placing = false;
    await Promise.all(pendingRecoveries);
    for (const member of members) if (!member.running) await restart(member);
    cluster.healAll();
    for (const proxy of clientLinks) proxy.heal();
    drainDeadline.at = Date.now() + DRAIN_MS;
    await Promise.all(workers);
    const durationSec = (Date.now() - started) / 1000;
    await client.close();

    say('waiting for every branch to be finished, then checking every service ...');
    const serviceUrls = new Map<EcommerceService, string>([...cluster.services].map(([name, m]) => [name, m.url]));
    const quiesced = await waitForQuiescence(serviceUrls, cluster.coordinatorUrls, QUIESCE_MS);
    if (!quiesced) problems.push(`the cluster did not quiesce within ${QUIESCE_MS / 1000} s after heal`);
    const inDoubtAfterHeal = await countInDoubt(cluster, serviceUrls);
    const report = await verifyCluster(serviceUrls, heard);
    problems.push(...report.problems);
    const committedAnywhere = new Set((await fetchSummaries(serviceUrls)).flatMap((summary) => summary.committedTxIds));
    const committedUnheard = [...committedAnywhere].filter((txId) => heard.get(txId) !== Outcome.COMMITTED);
    if (committedUnheard.length > 0) problems.push(`${committedUnheard.length} committed transactions no client heard as committed, e.g. ${committedUnheard[0]}`);
    if (unknownOutcomes > 0) problems.push(`${unknownOutcomes} orders never learned their outcome`);
    const pgPrepared = await cluster.pgPreparedGids();
    if (pgPrepared.length > 0) problems.push(`${pgPrepared.length} transactions left in pg_prepared_xacts, e.g. ${pgPrepared[0]}`);
    return {
      durationSec: Math.round(durationSec * 10) / 10,
      shards: options.shards,
      concurrency: options.concurrency,
      seed: options.seed,
      transactions: committed + aborted,
      committed,
      aborted,
      abortedByReason,
      unknownOutcomes,
      refused,
      clientResends,
      kills,
      killsByRole,
      killsByMember,
      restartFailures,
      partitions,
      partitionsByMode,
      atomicityViolations: report.atomicityViolations,
      lostCommits: report.lostCommits,
      abortedButCommitted: report.abortedButCommitted,
      committedUnheard: committedUnheard.length,
      inDoubtAfterHeal,
      ...(cluster.postgres ? { pgPreparedAfterHeal: pgPrepared.length } : {}),
      quiesced,
      invariantsOk: report.invariantsOk && quiesced && inDoubtAfterHeal === 0 && unknownOutcomes === 0 && refused === 0 && restartFailures === 0 &&
        committedUnheard.length === 0 && pgPrepared.length === 0,
      problems: problems.slice(0, 20),
    };
  } finally {
    await stopClientLinks();
    await cluster.stop();
    if (process.env.TXMESH_KEEP_DATA !== '1') cluster.removeData();
  }
}

/** Everything still unfinished anywhere: service branches, sidecar records, shard work in flight or in doubt. */
async function countInDoubt(cluster: Cluster, serviceUrls: Map<EcommerceService, string>): Promise<number> {
  const getJson = async (url: string, headers: Record<string, string> = {}): Promise<Record<string, unknown>> => {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
    return (await res.json()) as Record<string, unknown>;
  };
  const num = (value: unknown): number => (typeof value === 'number' ? value : 0);
  let total = 0;
  for (const url of serviceUrls.values()) total += num((await getJson(`${url}/admin/summary`)).preparedBranches);
  for (const sidecar of cluster.sidecars.values()) total += num((await getJson(`${sidecar.url}${Paths.SIDECAR_HEALTH}`)).prepared);
  for (const url of cluster.coordinatorUrls) {
    const stats = await getJson(`${url}/v1/stats`, cluster.clientHeaders);
    total += num(stats.inFlight) + num(stats.inDoubt);
  }
  return total;
}
