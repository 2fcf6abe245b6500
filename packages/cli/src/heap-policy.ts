/**
 * How far a coordinator's V8 heap may grow between two full collections. V8 sizes that from the machine's
 * memory: on a host with gigabytes free it lets the old space grow up to 4x what survived the last full
 * collection. At concurrency 1000 a shard's in-flight transactions outlive young-generation collections, are
 * promoted and die in the old space, so a shard held 160-240 MB resident with 30 MB live. A fixed growing
 * factor (TXMESH_HEAP_GROWING_PERCENT, one of V8's run-time flags, set by the process itself at start) keeps the
 * heap nearer its live size at the price of more full collections: 50 took a shard from 237 to 177 MB and cost
 * it about a tenth more CPU per transaction in one side-by-side run (docs/benchmarks.md), so V8's own heuristics
 * stay the default and a deployment with a memory limit chooses.
 */
import { setFlagsFromString } from 'node:v8';

/** 0: V8's own growing factor (throughput first); a percentage: the old space grows that much past the live heap. */
export const DEFAULT_HEAP_GROWING_PERCENT = 0;

const MAX_PERCENT = 1000;

/** Applies the policy; returns the percentage set, or 0 when V8's own heuristics stay. */
export function applyHeapPolicy(env: NodeJS.ProcessEnv, onInvalid: (message: string) => Error): number {
  const raw = env.TXMESH_HEAP_GROWING_PERCENT?.trim();
  const percent = raw === undefined || raw === '' ? DEFAULT_HEAP_GROWING_PERCENT : /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!(percent >= 0 && percent <= MAX_PERCENT)) {
    throw onInvalid(`TXMESH_HEAP_GROWING_PERCENT must be an integer from 0 to ${MAX_PERCENT}, got "${raw}"`);
  }
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
  return percent;
}
