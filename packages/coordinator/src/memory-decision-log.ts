/**
 * In-memory decision log with the same group-commit behaviour as the SQLite one. Its store can be
 * handed to a new instance to simulate a process restart in tests.
 */
import { GroupCommitLog, type DecisionRecord, type GroupCommitOptions, type LogWrite, type PruneCutoffs, type StoredService } from './decision-log.ts';

export class MemoryLogStore {
  readonly records = new Map<string, DecisionRecord>();
  readonly services = new Map<string, StoredService>();
  /** When the store was made: a new instance on the same store is a restart, not a new log. */
  readonly bornAt: number;

  constructor(bornAt: number = Date.now()) {
    this.bornAt = bornAt;
  }
}

export class MemoryDecisionLog extends GroupCommitLog {
  readonly store: MemoryLogStore;

  constructor(store: MemoryLogStore = new MemoryLogStore(), options: GroupCommitOptions = {}) {
    super(options);
    this.store = store;
  }

  get bornAt(): number {
    return this.store.bornAt;
  }

  protected writeGroup(writes: readonly LogWrite[]): void {
    // Check before applying anything so that a failing group changes nothing, as a SQLite transaction.
    const appended = new Set<string>();
    for (const write of writes) {
      if (write.kind !== 'append') continue;
      if (this.store.records.has(write.record.txId) || appended.has(write.record.txId)) {
        throw new Error(`decision record ${write.record.txId} already exists`);
      }
      appended.add(write.record.txId);
    }
    for (const write of writes) {
      if (write.kind === 'append') {
        // A snapshot, as a row on disk is: later changes to the caller's object must not leak in.
        this.store.records.set(write.record.txId, structuredClone(write.record));
      } else if (write.kind === 'done') {
        const record = this.store.records.get(write.txId);
        if (record) {
          record.state = write.state;
          record.doneAt = write.at;
          delete record.acked;
        }
      } else if (write.kind === 'ack') {
        const record = this.store.records.get(write.txId);
        if (record && !(record.acked ?? []).includes(write.service)) record.acked = [...(record.acked ?? []), write.service];
      } else if (write.kind === 'forget-service') {
        this.store.services.delete(write.service);
      } else {
        this.store.services.set(write.entry.service, write.entry);
      }
    }
  }

  protected pruneStorage(cutoffs: PruneCutoffs): number {
    let deleted = 0;
    for (const [txId, record] of this.store.records) {
      if (record.doneAt === undefined) continue;
      const cutoff = record.idempotencyKey === undefined ? cutoffs.unkeyedDoneBefore : cutoffs.keyedDoneBefore;
      if (record.doneAt <= cutoff) {
        this.store.records.delete(txId);
        deleted += 1;
      }
    }
    return deleted;
  }

  protected closeStorage(): void {
    // Nothing to release: the store outlives the instance on purpose.
  }

  get(txId: string): DecisionRecord | undefined {
    const record = this.store.records.get(txId);
    return record && structuredClone(record);
  }

  getByIdempotencyKey(key: string): DecisionRecord | undefined {
    for (const record of this.store.records.values()) {
      if (record.idempotencyKey === key) return structuredClone(record);
    }
    return undefined;
  }

  listUnfinished(): DecisionRecord[] {
    return [...this.store.records.values()]
      .filter((r) => r.state === 'COMMITTING' || r.state === 'ABORTING')
      .sort((a, b) => a.decidedAt - b.decidedAt)
      .map((r) => structuredClone(r));
  }

  listServices(): StoredService[] {
    return [...this.store.services.values()].map((s) => ({ ...s }));
  }
}
