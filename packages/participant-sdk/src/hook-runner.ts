/**
 * Invokes the service's operation handlers: argument parsing and lock keys before a prepare, and the
 * prepare/commit/rollback hooks, each at most once per (txId, operation, phase) thanks to the barrier.
 * Hooks run inside the caller's SQLite transaction and must be synchronous.
 */
import type Database from 'better-sqlite3';
import { LockMode, TxmeshError, type OperationSpec } from '@txmesh/protocol';
import { mergeLockRequests, type LockRequest } from './lock-manager.ts';
import type { BarrierStore, BranchRecord, HookPhase } from './barrier-store.ts';
import { ItemReasons, messageOf } from './item-results.ts';
import { BusinessRefusal, type HookContext, type OperationHandlers } from './operation.ts';
import type { ParticipantLog } from './participant-options.ts';

export interface ParsedOperation {
  handlers: OperationHandlers<unknown>;
  args: unknown;
}

/** Why a prepare votes no before it runs, recorded durably with the no. */
export interface Refusal {
  reason: string;
  message?: string;
}

export type ParsedPrepare = { parsed: ParsedOperation[]; locks: LockRequest[] } | { refusal: Refusal };

/**
 * Hooks must finish inside the SQLite transaction: an async hook would change data after the vote.
 * The refused promise still gets a rejection handler, or its failure would crash the process.
 */
function assertSynchronous(returned: unknown, phase: HookPhase, op: string, onLateFailure: (err: unknown) => void): void {
  const thenable = returned as { then?: unknown } | null | undefined;
  if (typeof thenable?.then === 'function') {
    (thenable as PromiseLike<unknown>).then(undefined, onLateFailure);
    throw new Error(`the ${phase} hook of operation "${op}" returned a promise; hooks must be synchronous`);
  }
}

export class HookRunner {
  readonly #service: string;
  readonly #db: Database.Database;
  readonly #operations: Record<string, OperationHandlers<any>>;
  readonly #store: BarrierStore;
  readonly #log: ParticipantLog;

  constructor(options: { service: string; db: Database.Database; operations: Record<string, OperationHandlers<any>>; store: BarrierStore; log: ParticipantLog }) {
    this.#service = options.service;
    this.#db = options.db;
    this.#operations = options.operations;
    this.#store = options.store;
    this.#log = options.log;
  }

  /** Parses every operation's arguments and gathers its lock requests (sorted, strongest mode per key), or says why it cannot run. */
  parse(txId: string, operations: readonly OperationSpec[]): ParsedPrepare {
    const locks: LockRequest[] = [];
    const parsed: ParsedOperation[] = [];
    for (const spec of operations) {
      const handlers = this.#handlersOf(spec.op);
      if (!handlers) return { refusal: { reason: 'TXM_UNKNOWN_OPERATION', message: `${this.#service} has no operation "${spec.op}"` } };
      try {
        const args = handlers.parseArgs(spec.args ?? {});
        for (const key of handlers.readKeys?.(args) ?? []) locks.push({ key: String(key), mode: LockMode.SHARED });
        for (const key of [...(handlers.writeKeys?.(args) ?? []), ...(handlers.lockKeys?.(args) ?? [])]) locks.push({ key: String(key), mode: LockMode.EXCLUSIVE });
        parsed.push({ handlers, args });
      } catch (err) {
        if (err instanceof BusinessRefusal) return { refusal: { reason: err.reason, message: err.message } };
        this.#log({ event: 'parse-args-failed', txId, op: spec.op, error: messageOf(err) });
        return { refusal: { reason: ItemReasons.PREPARE_FAILED, message: messageOf(err) } };
      }
    }
    return { parsed, locks: mergeLockRequests(locks) };
  }

  /** Runs the prepare hooks not yet run for this branch; throws what a hook throws. */
  prepare(txId: string, operations: readonly OperationSpec[], parsed: readonly ParsedOperation[], now: number): void {
    parsed.forEach(({ handlers, args }, opIndex) => {
      if (!this.#store.claimHook(txId, opIndex, 'prepare', now)) return;
      assertSynchronous(handlers.prepare(this.#context(txId, opIndex, operations[opIndex]!.expectVersion), args), 'prepare', operations[opIndex]!.op, this.#lateFailure(txId, 'prepare'));
    });
  }

  /** Runs the commit or rollback hooks not yet run for a stored branch; throws what a hook throws. */
  decide(phase: 'commit' | 'rollback', row: BranchRecord, now: number): void {
    row.operations.forEach((spec, opIndex) => {
      const handlers = this.#handlersOf(spec.op);
      if (!handlers) throw new TxmeshError('TXM_UNKNOWN_OPERATION', spec.op);
      if (!this.#store.claimHook(row.txId, opIndex, phase, now)) return;
      const args = handlers.parseArgs(spec.args ?? {});
      assertSynchronous(handlers[phase](this.#context(row.txId, opIndex), args), phase, spec.op, this.#lateFailure(row.txId, phase));
    });
  }

  #handlersOf(op: string): OperationHandlers<unknown> | undefined {
    return Object.hasOwn(this.#operations, op) ? (this.#operations[op] as OperationHandlers<unknown>) : undefined;
  }

  #lateFailure(txId: string, phase: HookPhase): (err: unknown) => void {
    return (err) => this.#log({ event: 'async-hook-rejected', txId, phase, error: messageOf(err) });
  }

  #context(txId: string, opIndex: number, expectVersion?: number): HookContext {
    const ctx: HookContext = { db: this.#db, txId, opIndex, service: this.#service };
    if (expectVersion !== undefined) ctx.expectVersion = expectVersion;
    return ctx;
  }
}
