/**
 * The coordinator's durable decision log. Under presumed abort only decisions are written: a COMMIT
 * record (forced before anyone hears "committed") and, when the request carried an idempotencyKey, an
 * ABORT record (so the key can never run twice). No record means abort.
 *
 * Group commit: every write queued during one event-loop turn goes to storage as one atomic group
 * (one SQLite transaction, one fsync). Forced appends resolve when their group is durable; unforced
 * writes (done marks, registry entries) ride along with the next group and are never awaited.
 */
import type { OperationSpec, TraceCarrier, TransactionResult, Vote } from '@txmesh/protocol';

export type DecisionState = 'COMMITTING' | 'ABORTING' | 'COMMITTED' | 'ABORTED';
export type FinalDecisionState = 'COMMITTED' | 'ABORTED';

export interface LoggedParticipant {
  service: string;
  /** Kept so that delivery can be redone after a restart with everything the branch was asked to do. */
  operations: OperationSpec[];
  vote: Vote;
  reason?: string;
  details?: string;
  /** No prepare was ever sent to it, so it needs no rollback (after a restart either). */
  unsent?: true;
}

export interface DecisionRecord {
  txId: string;
  /** COMMITTING/ABORTING while delivery runs; COMMITTED/ABORTED once every branch acknowledged. */
  state: DecisionState;
  participants: LoggedParticipant[];
  idempotencyKey?: string;
  /** sha256 of the canonical request body, to tell a retry from a different request with the same key. */
  requestHash?: string;
  /** What the client was told; a retried idempotencyKey gets exactly this back. */
  result: TransactionResult;
  createdAt: number;
  decidedAt: number;
  doneAt?: number;
  /** The transaction span's trace context: delivery resumed after a restart joins the same trace. */
  trace?: TraceCarrier;
  /**
   * Services whose branch acknowledged the outcome (logged unforced as each ack arrives), so that a
   * restart re-sends the outcome only to branches that have not: an acknowledged branch may since have
   * pruned its row and could no longer answer a repeated commit.
   */
  acked?: string[];
}

export interface StoredService {
  service: string;
  sidecarUrl: string;
  registeredAt: number;
}

export interface DecisionLogStats {
  /** Groups holding decision records written durably (each one fsync'd storage transaction). */
  flushes: number;
  /** Decision records made durable. */
  records: number;
}

/** Finished records done at or before these instants are deleted by prune(). */
export interface PruneCutoffs {
  /** For records without an idempotencyKey: nobody can ask for them again by key. */
  unkeyedDoneBefore: number;
  /** For records with a key: kept for the retention window so a retry still gets the first outcome. */
  keyedDoneBefore: number;
}

export interface PruneResult {
  deleted: number;
}

export interface GroupCommitOptions {
  /**
   * Default true. false writes and fsyncs every forced append on its own, at once (the benchmark's
   * naive mode); unforced writes still ride along with the next write.
   */
  groupCommit?: boolean;
  /** Told how long each group holding decision records took to write and force, and how many it held (metrics). */
  onForced?: (seconds: number, records: number) => void;
}

export interface DecisionLog {
  /**
   * Queues a decision record; resolves once it is durable (joins the current group commit). The log
   * takes the record as it is, without copying it: the caller must not change it afterwards.
   */
  append(record: DecisionRecord): Promise<void>;
  /** Marks a record finished. Unforced: written with the next group, never awaited. */
  markDone(txId: string, state: FinalDecisionState, at: number): void;
  /** Records that one branch acknowledged the outcome. Unforced, like markDone. */
  markAcked(txId: string, service: string, at: number): void;
  /**
   * When this log began (epoch ms). Presumed abort holds only for transactions that began after it: of an
   * older one the log cannot say it never committed (it may be a fresh or wrong file).
   */
  readonly bornAt: number;
  /** Records a service's sidecar address. Unforced, like markDone. */
  saveService(entry: StoredService): void;
  /** Deletes a service's address (the registry forgot it: unseen for its forget time). Unforced. */
  forgetService(service: string): void;
  get(txId: string): DecisionRecord | undefined;
  getByIdempotencyKey(key: string): DecisionRecord | undefined;
  /** Records whose delivery had not finished (COMMITTING/ABORTING), oldest first. */
  listUnfinished(): DecisionRecord[];
  listServices(): StoredService[];
  /**
   * Deletes finished (done-marked) records older than the cutoffs and gives the space back, so the
   * log is bounded by in-flight work plus the key retention, not by history. Unfinished records stay.
   */
  prune(cutoffs: PruneCutoffs): PruneResult;
  stats(): DecisionLogStats;
  /** Writes what is queued, then releases storage. Later appends are refused. */
  close(): Promise<void>;
}

export type LogWrite =
  | { kind: 'append'; record: DecisionRecord }
  | { kind: 'done'; txId: string; state: FinalDecisionState; at: number }
  | { kind: 'ack'; txId: string; service: string; at: number }
  | { kind: 'service'; entry: StoredService }
  | { kind: 'forget-service'; service: string };

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** How long an unforced write may wait for a forced one to share its group. */
const UNFORCED_DELAY_MS = 10;

/** Acknowledgements of a transaction whose done mark is in the same group: the done mark deletes them anyway. */
function withoutSettledAcks(writes: readonly LogWrite[]): readonly LogWrite[] {
  let done: Set<string> | undefined;
  for (const w of writes) if (w.kind === 'done') (done ??= new Set()).add(w.txId);
  return done === undefined ? writes : writes.filter((w) => w.kind !== 'ack' || !done.has(w.txId));
}

/**
 * The group-commit machinery shared by every implementation; subclasses only write one group
 * atomically and answer reads.
 */
export abstract class GroupCommitLog implements DecisionLog {
  #queue: LogWrite[] = [];
  #waiters: Waiter[] = [];
  #immediate: NodeJS.Immediate | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #flushes = 0;
  #records = 0;
  readonly #groupCommit: boolean;
  readonly #onForced: ((seconds: number, records: number) => void) | undefined;

  constructor(options: GroupCommitOptions = {}) {
    this.#groupCommit = options.groupCommit ?? true;
    this.#onForced = options.onForced;
  }

  /** Writes every entry or none (one storage transaction); throws on failure. */
  protected abstract writeGroup(writes: readonly LogWrite[]): void;
  protected abstract closeStorage(): void;
  abstract readonly bornAt: number;
  abstract get(txId: string): DecisionRecord | undefined;
  abstract getByIdempotencyKey(key: string): DecisionRecord | undefined;
  abstract listUnfinished(): DecisionRecord[];
  abstract listServices(): StoredService[];
  /** Deletes finished records per the cutoffs and reclaims space; called between groups. */
  protected abstract pruneStorage(cutoffs: PruneCutoffs): number;

  prune(cutoffs: PruneCutoffs): PruneResult {
    if (this.#closed) return { deleted: 0 };
    // Done marks still queued are not in storage yet; those records are simply pruned next time.
    return { deleted: this.pruneStorage(cutoffs) };
  }

  append(record: DecisionRecord): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('decision log is closed'));
    return new Promise<void>((resolve, reject) => {
      // No defensive copy: the record is serialised once, when its group is written.
      this.#queue.push({ kind: 'append', record });
      this.#waiters.push({ resolve, reject });
      if (this.#groupCommit) this.#scheduleForced();
      else this.#flush();
    });
  }

  markDone(txId: string, state: FinalDecisionState, at: number): void {
    if (this.#closed) return;
    this.#queue.push({ kind: 'done', txId, state, at });
    this.#scheduleUnforced();
  }

  markAcked(txId: string, service: string, at: number): void {
    if (this.#closed) return;
    this.#queue.push({ kind: 'ack', txId, service, at });
    this.#scheduleUnforced();
  }

  saveService(entry: StoredService): void {
    if (this.#closed) return;
    this.#queue.push({ kind: 'service', entry: { ...entry } });
    this.#scheduleUnforced();
  }

  forgetService(service: string): void {
    if (this.#closed) return;
    this.#queue.push({ kind: 'forget-service', service });
    this.#scheduleUnforced();
  }

  stats(): DecisionLogStats {
    return { flushes: this.#flushes, records: this.#records };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    this.closeStorage();
  }

  #scheduleForced(): void {
    if (this.#immediate) return;
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#immediate = setImmediate(() => this.#flush());
  }

  #scheduleUnforced(): void {
    if (this.#immediate || this.#timer) return;
    this.#timer = setTimeout(() => this.#flush(), UNFORCED_DELAY_MS);
  }

  #flush(): void {
    if (this.#immediate) clearImmediate(this.#immediate);
    if (this.#timer) clearTimeout(this.#timer);
    this.#immediate = undefined;
    this.#timer = undefined;
    if (this.#queue.length === 0) return;
    const writes = withoutSettledAcks(this.#queue);
    const waiters = this.#waiters;
    this.#queue = [];
    this.#waiters = [];
    const startedAt = performance.now();
    try {
      this.writeGroup(writes);
    } catch (err) {
      for (const w of waiters) w.reject(err);
      this.#keepUnforced(writes);
      return;
    }
    // Every waiter is one appended record: the forced writes of this group. A group of unforced writes
    // only is not forced (SqliteDecisionLog writes it without an fsync).
    if (waiters.length > 0) this.#flushes += 1;
    this.#records += waiters.length;
    if (waiters.length > 0) this.#onForced?.((performance.now() - startedAt) / 1000, waiters.length);
    for (const w of waiters) w.resolve();
  }

  /**
   * A failed group took its done marks and registry entries down with it, and nobody awaits those to
   * retry them: write them again on their own at once (a bad record is the usual cause), or, when
   * storage itself is failing, keep them ahead of newer writes so they ride with the next group.
   */
  #keepUnforced(failed: readonly LogWrite[]): void {
    const unforced = failed.filter((w) => w.kind !== 'append');
    if (unforced.length === 0) return;
    try {
      this.writeGroup(unforced);
    } catch {
      // Nothing can have been queued meanwhile (writeGroup is synchronous), so order is kept.
      this.#queue = [...unforced, ...this.#queue];
    }
  }
}
