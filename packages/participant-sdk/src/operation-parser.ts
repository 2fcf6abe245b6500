/**
 * The service's operation handlers before a prepare: which operation, its parsed arguments and the
 * business keys it locks. The hooks themselves are called by the storage adapter (runHook), inside the
 * transaction that writes their barrier rows.
 */
import { LockMode, type OperationSpec } from '@txmesh/protocol';
import { mergeLockRequests, type LockRequest } from './lock-manager.ts';
import { ItemReasons, messageOf } from './item-results.ts';
import { BusinessRefusal } from './operation.ts';
import type { ParticipantLog } from './participant-options.ts';

/** What every backend's handlers have in common: arguments and lock keys (the hooks differ). */
export interface OperationParsing<A> {
  parseArgs(args: unknown): A;
  readKeys?(args: A): string[];
  writeKeys?(args: A): string[];
  lockKeys?(args: A): string[];
}

export interface ParsedOperation {
  handlers: OperationParsing<unknown>;
  args: unknown;
}

/** Why a prepare votes no before it runs, recorded durably with the no. */
export interface Refusal {
  reason: string;
  message?: string;
}

export type ParsedPrepare = { parsed: ParsedOperation[]; locks: LockRequest[] } | { refusal: Refusal };

export class OperationParser {
  readonly #service: string;
  readonly #operations: Record<string, OperationParsing<any>>;
  readonly #log: ParticipantLog;

  constructor(options: { service: string; operations: Record<string, OperationParsing<any>>; log: ParticipantLog }) {
    this.#service = options.service;
    this.#operations = options.operations;
    this.#log = options.log;
  }

  /** Parses every operation's arguments and gathers its lock requests (sorted, strongest mode per key), or says why it cannot run. */
  parse(txId: string, operations: readonly OperationSpec[]): ParsedPrepare {
    const locks: LockRequest[] = [];
    const parsed: ParsedOperation[] = [];
    for (const spec of operations) {
      const handlers = this.handlersOf(spec.op);
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

  handlersOf(op: string): OperationParsing<unknown> | undefined {
    return Object.hasOwn(this.#operations, op) ? (this.#operations[op] as OperationParsing<unknown>) : undefined;
  }
}
