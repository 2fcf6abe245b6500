/**
 * The catalogue of reasons txmesh itself puts on a vote, an item result or an abort. A reason is a short
 * stable token a program can compare; the raw text of what happened (an address, an exception message)
 * travels beside it in `details`, never in it. Business refusals (OUT_OF_STOCK …) are the service's own
 * words and are not listed here; error codes of ErrorCodes (TXM_SERVICE_UNREACHABLE …) may appear as reasons
 * too. docs/design.md lists every reason; a test checks it does.
 */

export interface ReasonSpec {
  /** Who decides it: the coordinator about a branch, or the participant SDK about its own item. */
  readonly source: 'coordinator' | 'participant';
  readonly message: string;
}

export const Reasons = {
  TIMEOUT: {
    source: 'coordinator',
    message: 'A participant did not vote before its prepare deadline, or a call to its sidecar got no answer in time: retry, or raise timeoutMs if the service is slow.',
  },
  UNREACHABLE: {
    source: 'coordinator',
    message: 'The coordinator could not connect to the participant\'s sidecar (refused, reset, name not resolved, or no address registered): check that the sidecar runs; the raw error is in details.',
  },
  SIDECAR_ERROR: {
    source: 'coordinator',
    message: 'The participant\'s sidecar answered with an HTTP error status that names no txmesh code: check the sidecar\'s log and its address; details give the status and the body\'s size (not the body: a registered address may point anywhere).',
  },
  BAD_ANSWER: {
    source: 'coordinator',
    message: 'The sidecar\'s answer is not a valid batch result (not JSON, another protocol version, results missing or out of order, a reason that is not a token): run the same txmesh version everywhere.',
  },
  REFUSED: {
    source: 'coordinator',
    message: 'A participant voted no without giving a reason: the service\'s own log says why.',
  },
  ERROR: {
    source: 'coordinator',
    message: 'A participant answered with a transient error and no reason, or a call failed in a way txmesh does not classify: the raw text is in details.',
  },
  ALREADY_ROLLED_BACK: {
    source: 'participant',
    message: 'The branch\'s rollback arrived before its prepare, so the late prepare votes no and runs nothing; nothing needs doing.',
  },
  LOCK_TIMEOUT: {
    source: 'participant',
    message: 'A business key this branch needs stayed locked longer than lockWaitMs: retry the transaction.',
  },
  LOCK_CONFLICT: {
    source: 'participant',
    message: 'Another transaction holds or awaits a business key this branch needs (wait-die): retry the transaction.',
  },
  PREPARE_DEFERRED: {
    source: 'participant',
    message: 'Not a vote: the prepare still waits for a business key while the rest of its batch is answered; the participant keeps waiting and the coordinator asks again at once for the vote. Never seen by a client.',
  },
  DEADLOCK: {
    source: 'coordinator',
    message: 'This transaction was the youngest of a wait-for cycle across the participants\' locks and was aborted so the others could proceed: retry the transaction.',
  },
  VERSION_CONFLICT: {
    source: 'participant',
    message: 'The row changed after the version the operation carried in expectVersion was read: read it again and retry.',
  },
  DEADLINE_PASSED: {
    source: 'participant',
    message: 'The prepare reached the participant after its deadline, so it voted no without running: retry, or raise timeoutMs.',
  },
  PREPARE_FAILED: {
    source: 'participant',
    message: 'A prepare hook or argument parser threw an error that is not a BusinessRefusal: the service log and details name it.',
  },
  COMMIT_FAILED: {
    source: 'participant',
    message: 'A commit hook failed and changed nothing; the coordinator retries the commit until it succeeds: fix the service (details name the error).',
  },
  ROLLBACK_FAILED: {
    source: 'participant',
    message: 'A rollback hook failed and changed nothing; the coordinator retries the rollback until it succeeds: fix the service (details name the error).',
  },
  ALREADY_COMMITTED: {
    source: 'participant',
    message: 'A rollback arrived for a branch that had already committed (a stale look-up after pruning): the commit stands and the rollback is acknowledged as a no-op.',
  },
} as const satisfies Record<string, ReasonSpec>;

export type Reason = keyof typeof Reasons;

/** The wire names, for code: `Reason.TIMEOUT === 'TIMEOUT'`. */
export const Reason = Object.freeze(Object.fromEntries(Object.keys(Reasons).map((r) => [r, r]))) as { readonly [R in Reason]: R };

export function isReason(value: unknown): value is Reason {
  return typeof value === 'string' && Object.hasOwn(Reasons, value);
}

const REASON_TOKEN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Whether a value can be a reason on the wire: a token of letters, digits, `.`, `_`, `-` (1-64 chars).
 * Free text (an address, a sentence) belongs in details.
 */
export function isReasonToken(value: unknown): boolean {
  return typeof value === 'string' && REASON_TOKEN.test(value);
}
