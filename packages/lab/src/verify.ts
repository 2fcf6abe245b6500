/**
 * End-of-run checks over a whole cluster: every service agrees on every transaction, every commit a
 * client heard is applied everywhere, nothing is left prepared, and each service's own invariants
 * (stock and money conserved) hold.
 */
import type { EcommerceService, ServiceSummary } from '@txmesh/example-ecommerce';
import { Outcome } from '@txmesh/protocol';
import { sleep } from './cluster.ts';

export interface VerifyReport {
  /** A transaction committed at some services but not all of those it involved. */
  atomicityViolations: number;
  /** The client heard "committed" but some service has not applied it. */
  lostCommits: number;
  /** The client heard "aborted" but some service committed it. */
  abortedButCommitted: number;
  /** Branches still prepared (holding locks) after quiescence. */
  preparedAfterQuiescence: number;
  invariantsOk: boolean;
  problems: string[];
}

/** GET a member's JSON route, bounded: a member that hangs fails the read instead of the run. */
export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`GET ${url} answered HTTP ${res.status}`);
  return (await res.json()) as T;
}

export async function fetchSummaries(serviceUrls: Map<EcommerceService, string>): Promise<ServiceSummary[]> {
  return Promise.all([...serviceUrls.values()].map((url) => getJson<ServiceSummary>(`${url}/admin/summary`)));
}

/**
 * Waits until no service holds a prepared branch and no shard has work in flight (fan-out finished),
 * or the timeout passes. Returns whether it got there.
 */
export async function waitForQuiescence(
  serviceUrls: Map<EcommerceService, string>,
  coordinatorUrls: string[],
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const summaries = await fetchSummaries(serviceUrls);
      const stats = await Promise.all(coordinatorUrls.map((u) => getJson<{ inFlight: number }>(`${u}/v1/stats`)));
      if (summaries.every((s) => s.preparedBranches === 0) && stats.every((s) => s.inFlight === 0)) return true;
    } catch {
      // a member may be restarting; try again
    }
    await sleep(100);
  }
  return false;
}

/**
 * `heard` maps each txId to the outcome its client was told. Every example order involves all
 * services, so a transaction is consistent when all services list it as committed or none does.
 */
export async function verifyCluster(
  serviceUrls: Map<EcommerceService, string>,
  heard: Map<string, Outcome>,
): Promise<VerifyReport> {
  const summaries = await fetchSummaries(serviceUrls);
  const problems: string[] = [];
  const committedBy = new Map<string, number>();
  for (const summary of summaries) {
    for (const txId of summary.committedTxIds) committedBy.set(txId, (committedBy.get(txId) ?? 0) + 1);
    if (!summary.ok) problems.push(...summary.problems.map((p) => `${summary.service}: ${p}`));
  }
  const services = summaries.length;
  let atomicityViolations = 0;
  for (const [txId, count] of committedBy) {
    if (count !== services) {
      atomicityViolations++;
      if (problems.length < 20) problems.push(`${txId} committed at ${count} of ${services} services`);
    }
  }
  let lostCommits = 0;
  let abortedButCommitted = 0;
  for (const [txId, outcome] of heard) {
    const count = committedBy.get(txId) ?? 0;
    if (outcome === Outcome.COMMITTED && count < services) {
      lostCommits++;
      if (problems.length < 20) problems.push(`${txId}: client heard committed, applied at ${count} of ${services}`);
    }
    if (outcome === Outcome.ABORTED && count > 0) {
      abortedButCommitted++;
      if (problems.length < 20) problems.push(`${txId}: client heard aborted, committed at ${count} services`);
    }
  }
  const preparedAfterQuiescence = summaries.reduce((sum, s) => sum + s.preparedBranches, 0);
  if (preparedAfterQuiescence > 0) problems.push(`${preparedAfterQuiescence} branches still prepared`);
  const invariantsOk = summaries.every((s) => s.ok) && atomicityViolations === 0 && lostCommits === 0 &&
    abortedButCommitted === 0 && preparedAfterQuiescence === 0;
  return { atomicityViolations, lostCommits, abortedButCommitted, preparedAfterQuiescence, invariantsOk, problems };
}
