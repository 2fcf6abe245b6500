/**
 * The counters a run reads from its cluster at the edges of the measured window (shard and sidecar stats,
 * each member's CPU time), and the wait for the commit/rollback backlog to drain.
 */
import type { EcommerceService } from '@txmesh/example-ecommerce';
import { processCpuMs } from './bench-process.ts';
import { sleep, type Cluster, type Member } from './cluster.ts';
import { getJson } from './verify.ts';

export interface CoordinatorStats {
  committed: number;
  aborted: number;
  logFlushes: number;
  batchesSent: number;
  itemsSent: number;
}

export interface SidecarStats {
  batchesReceived: number;
  itemsReceived: number;
  serviceCalls: number;
  coordinatorCalls: number;
}

export interface Snapshot {
  coordinators: CoordinatorStats[];
  sidecars: Partial<Record<EcommerceService, SidecarStats>>;
  cpuMs: Record<string, number>;
}

/**
 * Waits until no shard has a transaction in flight and no sidecar holds a prepared record. Polls the cheap
 * counters only: the services' full audit (`/admin/summary`) would take CPU from the delivery it waits for.
 */
export async function waitForDrain(cluster: Cluster, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const shards = await Promise.all(cluster.coordinators.map((c) => getJson<{ inFlight: number }>(`${c.url}/v1/stats`)));
      const sidecars = await Promise.all([...cluster.sidecars.values()].map((m) => getJson<{ prepared: number }>(`${m.url}/txmesh/v1/health`)));
      if (shards.every((s) => s.inFlight === 0) && sidecars.every((s) => s.prepared === 0)) return true;
    } catch {
      // a member is busy or restarting: try again
    }
    if (Date.now() > deadline) return false;
    await sleep(500);
  }
}

export function members(cluster: Cluster): Member[] {
  return [...cluster.coordinators, ...cluster.services.values(), ...cluster.sidecars.values()];
}

export async function snapshot(cluster: Cluster): Promise<Snapshot> {
  // CPU first: it is what the window boundary is about; the HTTP reads below take a moment under load.
  const cpuMs: Record<string, number> = {};
  for (const m of members(cluster)) cpuMs[m.name] = processCpuMs(m.pid) ?? NaN;
  const coordinators = await Promise.all(cluster.coordinators.map((c) => getJson<CoordinatorStats>(`${c.url}/v1/stats`)));
  const sidecars: Snapshot['sidecars'] = {};
  await Promise.all(
    [...cluster.sidecars].map(async ([service, m]) => {
      try {
        sidecars[service] = await getJson<SidecarStats>(`${m.url}/txmesh/v1/stats`);
      } catch {
        // a sidecar without the stats route: its share of requests is left out and reported as missing
      }
    }),
  );
  return { coordinators, sidecars, cpuMs };
}
