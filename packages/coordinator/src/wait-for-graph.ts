/**
 * The wait-for graph of a cluster, as one shard sees it: every service's latest set of edges
 * (waiter → holder), each report replacing that service's previous one. No sockets here.
 *
 * Every sidecar sends its service's edges to every shard, so each shard holds the same graph (up to
 * messages in flight) and finds the same cycles. A cycle's victim is its youngest transaction
 * (compareTxAge: ids carry their start time, the order is total and the same everywhere), and only the
 * shard that owns the victim's id aborts it, so a cycle seen by several shards still loses exactly one
 * transaction.
 */
import { compareTxAge, type WaitEdge } from '@txmesh/protocol';

export interface DeadlockCycle {
  /** The youngest member: the one to abort. */
  victim: string;
  /** Every transaction of the strongly connected component, oldest first. */
  members: string[];
  /** Epoch ms the cycle's last edge began (the moment it formed), when the reports said. */
  formedAt?: number;
}

interface ServiceEdges {
  edges: WaitEdge[];
  at: number;
}

export class WaitForGraph {
  readonly #byService = new Map<string, ServiceEdges>();

  /** Replaces the service's edges. */
  report(service: string, edges: readonly WaitEdge[], now: number = Date.now()): void {
    if (edges.length === 0) this.#byService.delete(service);
    else this.#byService.set(service, { edges: [...edges], at: now });
  }

  /** Forgets reports older than `maxAgeMs` (a service that stopped reporting). */
  expire(maxAgeMs: number, now: number = Date.now()): void {
    for (const [service, report] of this.#byService) if (now - report.at > maxAgeMs) this.#byService.delete(service);
  }

  get edgeCount(): number {
    let n = 0;
    for (const report of this.#byService.values()) n += report.edges.length;
    return n;
  }

  /**
   * The cycles to break, one victim each. Repeats: strongly connected components (Tarjan, O(V + E)),
   * the youngest member of every component with a cycle is a victim and leaves the graph, until none
   * is left. A pair or a ring is one component and loses one transaction; components that share
   * nobody are broken in the same round. `gone` are transactions already being aborted.
   */
  cycles(gone: ReadonlySet<string> = new Set()): DeadlockCycle[] {
    const out = new Map<string, Map<string, number | undefined>>();
    for (const { edges } of this.#byService.values()) {
      for (const e of edges) {
        if (e.waiter === e.holder || gone.has(e.waiter) || gone.has(e.holder)) continue;
        const targets = out.get(e.waiter) ?? new Map<string, number | undefined>();
        const since = targets.get(e.holder);
        targets.set(e.holder, since === undefined ? e.since : e.since === undefined ? since : Math.min(since, e.since));
        out.set(e.waiter, targets);
      }
    }
    const removed = new Set<string>();
    const found: DeadlockCycle[] = [];
    for (;;) {
      const components = stronglyConnected(out, removed).filter((c) => c.length > 1);
      if (components.length === 0) return found;
      for (const members of components) {
        members.sort(compareTxAge);
        const victim = members[members.length - 1]!;
        const cycle: DeadlockCycle = { victim, members };
        const formedAt = latestEdgeStart(out, members);
        if (formedAt !== undefined) cycle.formedAt = formedAt;
        found.push(cycle);
        removed.add(victim);
      }
    }
  }
}

/** The newest start among the edges inside the component: when its last wait began. */
function latestEdgeStart(out: Map<string, Map<string, number | undefined>>, members: readonly string[]): number | undefined {
  const inside = new Set(members);
  let latest: number | undefined;
  for (const waiter of members) {
    for (const [holder, since] of out.get(waiter) ?? []) {
      if (inside.has(holder) && since !== undefined && (latest === undefined || since > latest)) latest = since;
    }
  }
  return latest;
}

/** Tarjan's algorithm without recursion (a long chain of waits must not overflow the stack). */
function stronglyConnected(out: Map<string, Map<string, number | undefined>>, removed: ReadonlySet<string>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;
  const successors = (v: string): string[] => [...(out.get(v)?.keys() ?? [])].filter((w) => !removed.has(w));
  for (const root of out.keys()) {
    if (removed.has(root) || index.has(root)) continue;
    const frames: { v: string; succ: string[]; i: number }[] = [];
    const visit = (v: string): void => {
      index.set(v, next);
      low.set(v, next);
      next += 1;
      stack.push(v);
      onStack.add(v);
      frames.push({ v, succ: successors(v), i: 0 });
    };
    visit(root);
    while (frames.length > 0) {
      const frame = frames[frames.length - 1]!;
      if (frame.i < frame.succ.length) {
        const w = frame.succ[frame.i++]!;
        if (!index.has(w)) visit(w);
        else if (onStack.has(w)) low.set(frame.v, Math.min(low.get(frame.v)!, index.get(w)!));
        continue;
      }
      frames.pop();
      const parent = frames[frames.length - 1];
      if (parent) low.set(parent.v, Math.min(low.get(parent.v)!, low.get(frame.v)!));
      if (low.get(frame.v) === index.get(frame.v)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== frame.v);
        components.push(component);
      }
    }
  }
  return components;
}
