/**
 * How much memory a coordinator's V8 heap may hold beyond what is live. At concurrency 1000 a shard's in-flight
 * transactions outlive young-generation collections, are promoted and die in the old space, so with V8's own
 * sizing a shard held 200-240 MB resident with 20-30 MB live: two 16 MB semi-spaces, and an old space that V8
 * lets grow up to 4x what survived the last full collection on a host with gigabytes free. Two settings, read
 * from the environment and applied by the process itself at start (V8 flags that can change at run time):
 * - TXMESH_SEMI_SPACE_MB: the young generation's semi-spaces grow to at most this size (young-generation-cap.ts);
 * - TXMESH_HEAP_GROWING_PERCENT: the old space grows this much past the live heap between full collections.
 * Both on by default (4 MB, 50 %) held a shard at concurrency 1000 at 148-152 MB instead of 241-243 MB, for about a
 * tenth more of the coordinator's CPU per transaction at 64 and at 1000 (docs/benchmarks.md: alternating pairs in
 * one quiet window). 0 for both gives V8's own sizing back: throughput first, memory second.
 * A coordinator that exports traces allocates about a kilobyte more per span (the SDK's span objects), so at 4 MB
 * its scavenges came that much more often, each copying the shard's live transactions and their spans again: the
 * cap doubled what tracing cost the shard's CPU (docs/benchmarks.md, issue 15). Its semi-spaces stop at 8 MB by
 * default instead.
 */
import { setFlagsFromString } from 'node:v8';
import { sdkDisabled, tracingRequested } from './telemetry-options.ts';
import { capYoungGeneration, type YoungGenerationCap } from './young-generation-cap.ts';

/** 0: V8's own growing factor; a percentage: the old space grows that much past the live heap. */
export const DEFAULT_HEAP_GROWING_PERCENT = 50;
/** 0: V8's own semi-space growth (to 16 MB); N: a semi-space grows to at most N MB. */
export const DEFAULT_SEMI_SPACE_MB = 4;
/** The default when the environment asks for traces (OTEL_TRACES_EXPORTER, an OTLP endpoint) and the SDK is on. */
export const DEFAULT_TRACED_SEMI_SPACE_MB = 8;

const MAX_PERCENT = 1000;
/** V8 doubles a semi-space from 1 MB up to 16 MB (64-bit Node 20), so these are the sizes it can hold at. */
const SEMI_SPACE_SIZES_MB = [0, 1, 2, 4, 8, 16];

export interface HeapPolicy {
  heapGrowingPercent: number;
  semiSpaceMb: number;
}

function readGrowingPercent(env: NodeJS.ProcessEnv, onInvalid: (message: string) => Error): number {
  const raw = env.TXMESH_HEAP_GROWING_PERCENT?.trim();
  const value = raw === undefined || raw === '' ? DEFAULT_HEAP_GROWING_PERCENT : /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!(value >= 0 && value <= MAX_PERCENT)) throw onInvalid(`TXMESH_HEAP_GROWING_PERCENT must be an integer from 0 to ${MAX_PERCENT}, got "${raw}"`);
  return value;
}

/** The policy the environment asks for; a value out of range is refused through `onInvalid`. */
export function readHeapPolicy(env: NodeJS.ProcessEnv, onInvalid: (message: string) => Error): HeapPolicy {
  return {
    heapGrowingPercent: readGrowingPercent(env, onInvalid),
    semiSpaceMb: readSemiSpaceMb(env, onInvalid),
  };
}

function readSemiSpaceMb(env: NodeJS.ProcessEnv, onInvalid: (message: string) => Error): number {
  const raw = env.TXMESH_SEMI_SPACE_MB?.trim();
  const byDefault = tracingRequested(env) && !sdkDisabled(env) ? DEFAULT_TRACED_SEMI_SPACE_MB : DEFAULT_SEMI_SPACE_MB;
  const value = raw === undefined || raw === '' ? byDefault : /^\d{1,2}$/.test(raw) ? Number(raw) : NaN;
  if (!SEMI_SPACE_SIZES_MB.includes(value)) throw onInvalid(`TXMESH_SEMI_SPACE_MB must be one of ${SEMI_SPACE_SIZES_MB.join(', ')} (0: V8's own), got "${raw}"`);
  return value;
}

/** Reads and applies the policy to this process; the cap, when one is set, lasts until stopped. */
export function applyHeapPolicy(env: NodeJS.ProcessEnv, onInvalid: (message: string) => Error): HeapPolicy & { youngGeneration?: YoungGenerationCap } {
  const policy = readHeapPolicy(env, onInvalid);
  if (policy.heapGrowingPercent > 0) setFlagsFromString(`--heap-growing-percent=${policy.heapGrowingPercent}`);
  return policy.semiSpaceMb > 0 ? { ...policy, youngGeneration: capYoungGeneration(policy.semiSpaceMb) } : policy;
}
