/** In-process PreparedStore: for tests and for embedding where durability is provided elsewhere. */
import type { PreparedRecord, PreparedStore } from './prepared-store.ts';

function copy(record: PreparedRecord): PreparedRecord {
  const copied: PreparedRecord = { ...record, operations: structuredClone(record.operations) };
  if (record.trace !== undefined) copied.trace = { ...record.trace };
  return copied;
}

export class MemoryPreparedStore implements PreparedStore {
  readonly #records = new Map<string, PreparedRecord>();

  put(records: readonly PreparedRecord[]): void {
    for (const record of records) {
      if (!this.#records.has(record.txId)) this.#records.set(record.txId, copy(record));
    }
  }

  remove(txIds: readonly string[]): void {
    for (const txId of txIds) this.#records.delete(txId);
  }

  get(txId: string): PreparedRecord | undefined {
    const record = this.#records.get(txId);
    return record ? copy(record) : undefined;
  }

  list(): PreparedRecord[] {
    return [...this.#records.values()].map(copy).sort((a, b) => a.preparedAt - b.preparedAt || a.txId.localeCompare(b.txId));
  }

  count(): number {
    return this.#records.size;
  }

  close(): void {
    this.#records.clear();
  }
}
