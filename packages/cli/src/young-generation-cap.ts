/**
 * Holds the young generation of this process's V8 heap at a given semi-space size. V8 starts a semi-space
 * at 1 MB and doubles it after scavenges that keep much of it alive, up to 16 MB (64-bit Node 20): two
 * semi-spaces of 16 MB are 32 MB resident once a busy shard has cycled through them. The upper bound
 * (--max-semi-space-size) is read only when the heap is created, so a process cannot lower it for itself;
 * the growth factor is read at every growth, so after each garbage collection this sets it to 1 (grow no
 * further) once a semi-space has reached the cap, and below the cap to the factor whose next growth lands on
 * the cap exactly: the collections are reported a little later (after the I/O callbacks of the loop turn that
 * ran them), so V8's doubling could otherwise step past the cap before the report arrives.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/** V8's own --semi-space-growth-factor. */
const V8_GROWTH_FACTOR = 2;
const MB = 1024 * 1024;

/** The growth factor that takes a semi-space of `bytes` to the cap in one growth (1 at or past it). */
export function growthFactorToward(capBytes: number, bytes: number): number {
  if (bytes >= capBytes) return 1;
  if (!(bytes > 0)) return V8_GROWTH_FACTOR;
  return Math.max(V8_GROWTH_FACTOR, Math.floor(capBytes / bytes));
}

export interface YoungGenerationCap {
  /** The semi-space size now, MB (the young generation holds two). */
  semiSpaceMb(): number;
  /** Lets V8 grow the young generation as it likes again. */
  stop(): void;
}

/**
 * The capacity of one semi-space, bytes, as the power of two V8 sized it to: used + available is that size
 * less its pages' headers (0.98 MB for 1 MB), while space_size is what both semi-spaces have committed, which
 * lags a growth or a shrink by a collection.
 */
function semiSpaceBytes(): number {
  const newSpace = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space');
  const capacity = (newSpace?.space_used_size ?? 0) + (newSpace?.space_available_size ?? 0);
  return capacity > 0 ? 2 ** Math.round(Math.log2(capacity / MB)) * MB : 0;
}

export function capYoungGeneration(semiSpaceMb: number): YoungGenerationCap {
  if (!(Number.isInteger(semiSpaceMb) && semiSpaceMb > 0)) throw new RangeError(`semiSpaceMb must be a positive integer, got ${semiSpaceMb}`);
  let factor = V8_GROWTH_FACTOR;
  const setFactor = (next: number): void => {
    if (next === factor) return;
    factor = next;
    setFlagsFromString(`--semi-space-growth-factor=${next}`);
  };
  const check = (): void => setFactor(growthFactorToward(semiSpaceMb * MB, semiSpaceBytes()));
  check();
  const observer = new PerformanceObserver(check);
  observer.observe({ entryTypes: ['gc'] });
  return {
    semiSpaceMb: () => semiSpaceBytes() / MB,
    stop: () => {
      observer.disconnect();
      setFactor(V8_GROWTH_FACTOR);
    },
  };
}
