/**
 * Waits between retries that close() can cut short: a closing manager must not keep timers (and the
 * process) alive for a backoff that no longer matters.
 */
export class Sleeper {
  readonly #sleeps = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();

  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.#sleeps.delete(entry);
          resolve();
        }, ms),
        wake: resolve,
      };
      this.#sleeps.add(entry);
    });
  }

  /** Ends every running sleep now. */
  wakeAll(): void {
    for (const sleep of this.#sleeps) {
      clearTimeout(sleep.timer);
      sleep.wake();
    }
    this.#sleeps.clear();
  }
}
