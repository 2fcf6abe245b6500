/**
 * The vocabulary of isolation: lock modes, deadlock handling modes, wait-for edges that participants
 * report, and the reasons a branch votes no because of concurrency (not business) conflicts.
 */

/** How a branch holds a business key from prepare to outcome. */
export const LockMode = {
  /** Read: any number of transactions may share the key. */
  SHARED: 'shared',
  /** Write: one transaction, no readers. */
  EXCLUSIVE: 'exclusive',
} as const;
export type LockMode = (typeof LockMode)[keyof typeof LockMode];

/** How lock waits that may form a cycle are ended. */
export const DeadlockMode = {
  /** Wait (up to lockWaitMs) while no cycle exists; the coordinator finds cycles and aborts the youngest. */
  DETECT: 'detect',
  /** A younger transaction behind an older one gives up after lockGraceMs, cycle or not. */
  WAIT_DIE: 'wait-die',
  /** Wait up to lockWaitMs; a cycle lasts until a wait times out. */
  TIMEOUT: 'timeout',
} as const;
export type DeadlockMode = (typeof DeadlockMode)[keyof typeof DeadlockMode];

const MODES = new Set<string>(Object.values(DeadlockMode));

export function isDeadlockMode(value: unknown): value is DeadlockMode {
  return typeof value === 'string' && MODES.has(value);
}

/** Reasons on no votes and aborts that come from concurrency control. */
export const IsolationReasons = {
  /** This transaction was the youngest of a wait-for cycle and was aborted to break it. */
  DEADLOCK: 'DEADLOCK',
  /** A row changed after the version the operation carried in expectVersion was read. */
  VERSION_CONFLICT: 'VERSION_CONFLICT',
} as const;

/** Transaction `waiter` waits for a key that transaction `holder` holds (or is ahead of it in the queue). */
export interface WaitEdge {
  waiter: string;
  holder: string;
  key: string;
  /** Epoch ms the wait began (the participant's clock), so a detector can tell how long a cycle stood. */
  since?: number;
}

/**
 * A service's complete set of wait-for edges at one moment. Each report replaces the service's previous
 * one at the coordinator, so an edge that ended disappears with the next report.
 */
export interface WaitReport {
  service: string;
  edges: WaitEdge[];
}
