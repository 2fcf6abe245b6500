/**
 * Latency percentiles without sorting: a log-bucketed histogram (each bucket about 9 % wide, from 10 µs to
 * over a minute), so recording is O(1) and a percentile is one pass over a fixed number of buckets. Two
 * periods are kept (the current one and the one before) so the figures describe recent traffic, not
 * everything since the process started.
 */
const MIN_MS = 0.01;
/** 8 buckets per doubling. */
const BUCKETS_PER_OCTAVE = 8;
const BUCKETS = BUCKETS_PER_OCTAVE * 23;

function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const index = Math.floor(Math.log2(ms / MIN_MS) * BUCKETS_PER_OCTAVE);
  return index >= BUCKETS ? BUCKETS - 1 : index;
}

/** The upper edge of a bucket: a percentile is reported as at most this. */
function upperEdgeMs(bucket: number): number {
  return MIN_MS * 2 ** ((bucket + 1) / BUCKETS_PER_OCTAVE);
}

export class LatencyHistogram {
  #current = new Uint32Array(BUCKETS);
  #previous = new Uint32Array(BUCKETS);
  #currentCount = 0;
  #previousCount = 0;
  #periodStart: number;

  readonly #periodMs: number;
  readonly #now: () => number;
  constructor(
    periodMs: number = 10_000,
    now: () => number = Date.now,
  ) {
    this.#periodMs = periodMs;
    this.#now = now;
    this.#periodStart = now();
  }

  record(ms: number): void {
    this.#rotate();
    this.#current[bucketOf(ms)]! += 1;
    this.#currentCount += 1;
  }

  get count(): number {
    this.#rotate();
    return this.#currentCount + this.#previousCount;
  }

  /** p in (0, 100]; undefined when nothing was recorded in the last two periods. */
  percentile(p: number): number | undefined {
    this.#rotate();
    const total = this.#currentCount + this.#previousCount;
    if (total === 0) return undefined;
    const rank = Math.max(1, Math.ceil((p / 100) * total));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.#current[b]! + this.#previous[b]!;
      if (seen >= rank) return upperEdgeMs(b);
    }
    return upperEdgeMs(BUCKETS - 1);
  }

  #rotate(): void {
    const elapsed = this.#now() - this.#periodStart;
    if (elapsed < this.#periodMs) return;
    if (elapsed >= 2 * this.#periodMs) {
      // Idle for two periods: nothing recent is left.
      this.#previous.fill(0);
      this.#previousCount = 0;
    } else {
      const old = this.#previous;
      this.#previous = this.#current;
      this.#previousCount = this.#currentCount;
      this.#current = old;
    }
    this.#current.fill(0);
    this.#currentCount = 0;
    this.#periodStart = this.#now();
  }
}
