/**
 * A Map that keeps only the most recently set entries, so memory stays bounded however long the
 * process runs (finished transactions are kept for GET, not forever).
 *
 * The order of setting is kept in a queue of its own, not read back from the Map: a Map's oldest key is found by
 * an iterator that steps over every slot deleted since the table was last rebuilt, thousands at a 10,000-entry
 * limit, and that cost 6.8 µs per set, once per transaction (docs/benchmarks.md, stop 31).
 */
export class RecentMap<K, V> {
  readonly #entries = new Map<K, { value: V; seq: number }>();
  readonly #limit: number;
  /** Keys in the order they were set, from #head on, each with the set's sequence number (a re-set leaves a stale one). */
  #order: K[] = [];
  #seqs: number[] = [];
  #head = 0;
  #seq = 0;

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer: ${limit}`);
    this.#limit = limit;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: K): V | undefined {
    return this.#entries.get(key)?.value;
  }

  set(key: K, value: V): void {
    // Re-setting moves the key to the newest end: its older place in the queue goes stale.
    const seq = ++this.#seq;
    this.#entries.set(key, { value, seq });
    this.#order.push(key);
    this.#seqs.push(seq);
    while (this.#entries.size > this.#limit) {
      const oldest = this.#order[this.#head]!;
      const oldestSeq = this.#seqs[this.#head]!;
      this.#head += 1;
      if (this.#entries.get(oldest)?.seq === oldestSeq) this.#entries.delete(oldest);
    }
    // The queue is cut when its dead head (or stale places left by re-sets) outweighs the live part.
    if (this.#order.length - this.#head > 2 * this.#limit) this.#compact();
    else if (this.#head > 1024 && this.#head * 2 > this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#seqs = this.#seqs.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Keeps only the live places of the queue, in order. */
  #compact(): void {
    const order: K[] = [];
    const seqs: number[] = [];
    for (let i = this.#head; i < this.#order.length; i++) {
      const key = this.#order[i]!;
      if (this.#entries.get(key)?.seq === this.#seqs[i]) {
        order.push(key);
        seqs.push(this.#seqs[i]!);
      }
    }
    this.#order = order;
    this.#seqs = seqs;
    this.#head = 0;
  }
}
