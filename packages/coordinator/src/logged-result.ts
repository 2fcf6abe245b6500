/**
 * The `result` column of a decision record: what the client was told, which a retried idempotencyKey gets back.
 * Nearly all of it repeats the record's other columns (its txId, the outcome its state implies, each participant's
 * service, vote, reason and details, decidedAt - createdAt), so a result that is exactly that is stored as
 * `{"derived":1}` plus the abort's reason and details, and rebuilt when read: the JSON of a 4-service result was
 * about a quarter of each row's bytes and a JSON.stringify per transaction. A result that differs in any way is
 * stored whole, as every result was before, and a whole one is read as ever.
 */
import { Outcome, type ParticipantResult, type TransactionResult } from '@txmesh/protocol';
import type { DecisionRecord, DecisionState, LoggedParticipant } from './decision-log.ts';

interface DerivedResult {
  derived: 1;
  reason?: string;
  details?: string;
}

function outcomeOf(state: DecisionState): Outcome {
  return state === 'COMMITTING' || state === 'COMMITTED' ? Outcome.COMMITTED : Outcome.ABORTED;
}

/** True when `result` is what resultFromColumns would rebuild from the record's other columns. */
function derivable(record: DecisionRecord): boolean {
  const result = record.result;
  if (result.txId !== record.txId || result.outcome !== outcomeOf(record.state) || result.durationMs !== record.decidedAt - record.createdAt) return false;
  const logged = record.participants;
  const told = result.participants;
  if (told.length !== logged.length) return false;
  for (let i = 0; i < told.length; i++) {
    const t = told[i]!;
    const l = logged[i]!;
    if (t.service !== l.service || t.vote !== l.vote || t.reason !== l.reason || t.details !== l.details) return false;
  }
  // Nothing else may be in it: a result with a field this file does not know is stored whole.
  let keys = 0;
  for (const key in result) if (Object.hasOwn(result, key) && (result as unknown as Record<string, unknown>)[key] !== undefined) keys += 1;
  return keys === 4 + (result.reason !== undefined ? 1 : 0) + (result.details !== undefined ? 1 : 0);
}

/** The column's text for `record.result`. */
export function resultColumn(record: DecisionRecord): string {
  const result = record.result;
  if (!derivable(record)) return JSON.stringify(result);
  if (result.reason === undefined && result.details === undefined) return '{"derived":1}';
  const derived: DerivedResult = { derived: 1 };
  if (result.reason !== undefined) derived.reason = result.reason;
  if (result.details !== undefined) derived.details = result.details;
  return JSON.stringify(derived);
}

/** The result a row's column stands for, given the row's other columns. */
export function resultFromColumn(text: string, row: { txId: string; state: DecisionState; participants: readonly LoggedParticipant[]; createdAt: number; decidedAt: number }): TransactionResult {
  const parsed = JSON.parse(text) as TransactionResult | DerivedResult;
  if ((parsed as DerivedResult).derived !== 1) return parsed as TransactionResult;
  const { reason, details } = parsed as DerivedResult;
  const txId = row.txId;
  const outcome = outcomeOf(row.state);
  const participants = row.participants.map((p) => {
    const told: ParticipantResult = { service: p.service, vote: p.vote };
    if (p.reason !== undefined) told.reason = p.reason;
    if (p.details !== undefined) told.details = p.details;
    return told;
  });
  const durationMs = row.decidedAt - row.createdAt;
  // Its keys in the order TransactionManager wrote the result it answered with.
  const result: TransactionResult = reason === undefined ? { txId, outcome, participants, durationMs } : { txId, outcome, reason, participants, durationMs };
  if (details !== undefined) result.details = details;
  return result;
}
