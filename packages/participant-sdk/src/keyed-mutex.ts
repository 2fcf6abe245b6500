/**
 * In-process mutual exclusion per key (here: per txId), so a prepare and a decision of the same branch never
 * interleave across the awaits of an async database. Keys are taken in sorted order, so two holders of several
 * keys cannot wait for each other.
 */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<void>>();

  async #lock(key: string): Promise<() => void> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = before.then(() => mine);
    this.#tails.set(key, tail);
    await before;
    return () => {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    };
  }

  /** Resolves once every key is held; call the returned function to let them all go. */
  async lockAll(keys: Iterable<string>): Promise<() => void> {
    const releases: (() => void)[] = [];
    for (const key of [...new Set(keys)].sort()) releases.push(await this.#lock(key));
    return () => {
      for (const release of releases) release();
    };
  }

  /** Runs fn while holding every key. */
  async with<T>(keys: Iterable<string>, fn: () => Promise<T>): Promise<T> {
    const release = await this.lockAll(keys);
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
