/**
 * The participant's rules (what a prepare, a commit, a rollback does with the branch rows) are written
 * once, as generators that yield each database call. SQLite answers such a call at once and must finish
 * inside one synchronous better-sqlite3 transaction, so `runNow` drives them without ever awaiting;
 * PostgreSQL answers with a promise, so `runAwaiting` awaits each call on the transaction's client.
 */
export type MaybePromise<T> = T | PromiseLike<T>;

/** A rule: a generator that yields database calls and returns its result. */
export type Steps<T> = Generator<unknown, T, unknown>;

/** One database call inside a rule: `const row = yield* call(rows.branch(id))`. */
export function* call<T>(value: MaybePromise<T>): Steps<T> {
  return (yield value) as T;
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function';
}

/** Drives a rule whose every call answers at once (SQLite). A promise here is a bug in the adapter. */
export function runNow<T>(steps: Steps<T>): T {
  let next = steps.next();
  while (!next.done) {
    if (isThenable(next.value)) {
      // A rejection of this stray promise must not crash the process.
      next.value.then(undefined, () => {});
      next = steps.throw(new TypeError('a synchronous storage call returned a promise'));
      continue;
    }
    next = steps.next(next.value);
  }
  return next.value;
}

/** Drives a rule whose calls answer with promises (PostgreSQL); a rejection is thrown into the rule. */
export async function runAwaiting<T>(steps: Steps<T>): Promise<T> {
  let next = steps.next();
  while (!next.done) {
    let value: unknown;
    try {
      value = await next.value;
    } catch (err) {
      next = steps.throw(err);
      continue;
    }
    next = steps.next(value);
  }
  return next.value;
}
