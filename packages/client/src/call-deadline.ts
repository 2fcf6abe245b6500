/**
 * Ends a call when its time bound passes. The JSON client arms one per call; a transport says what ending the
 * call means for its stack. Cheaper than an AbortController per call: node:http hooks a signal into the
 * request, its socket and its end-of-stream tracking through EventTarget listeners, which at one call per
 * batch was about 5 % of a sidecar's CPU (docs/benchmarks.md, issue 18).
 */
export class CallDeadline {
  #passed = false;
  #onPass: (() => void) | undefined;
  readonly #timer: NodeJS.Timeout;

  constructor(timeoutMs: number) {
    this.#timer = setTimeout(() => this.#pass(), timeoutMs);
  }

  /** True once the bound passed (the call then fails TIMEOUT, whatever error its stack raised). */
  get passed(): boolean {
    return this.#passed;
  }

  /** What ends the call when the bound passes; runs at once when it has passed already. One per call. */
  onPass(end: () => void): void {
    this.#onPass = end;
    if (this.#passed) end();
  }

  /** The call is over: the timer goes, and nothing runs later. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#onPass = undefined;
  }

  #pass(): void {
    this.#passed = true;
    this.#onPass?.();
  }
}
