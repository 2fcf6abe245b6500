/**
 * The storage adapter contract as one test suite, run on every backend (SQLite, PostgreSQL tentative,
 * PostgreSQL native two-phase commit): duplicates, rollback before prepare, prepare after rollback,
 * refusals stored with their vote, pruning, and prepared branches keeping their keys across a restart.
 * A backend supplies a ledger service (accounts a and b at 100; `credit` adds a signed amount, refusing
 * to go below zero) and the means to look at its committed balances.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import {
  BranchAction,
  PROTOCOL_VERSION,
  newTxId,
  type BranchBatchResponse,
  type BranchItem,
  type BranchItemResult,
  type BranchBatchRequest,
} from '@txmesh/protocol';
import { DEFAULT_BRANCH_RETENTION_MS } from '@txmesh/participant-sdk';

export const LEDGER = 'ledger';
export const START_BALANCE = 100;

export interface CreditArgs {
  account: string;
  amount: number;
}

/** Shared by every backend's ledger: one signed amount on one existing account. */
export function parseCredit(args: unknown): CreditArgs {
  const a = args as Partial<CreditArgs>;
  if (typeof a.account !== 'string' || !Number.isInteger(a.amount)) throw new TypeError('credit needs an account and an integer amount');
  return { account: a.account, amount: a.amount! };
}

export const creditKeys = (a: CreditArgs): string[] => [`account:${a.account}`];

export interface ContractParticipant {
  handleBatch(req: BranchBatchRequest): Promise<BranchBatchResponse>;
  preparedIds(): Promise<string[]>;
  prune(now: number): Promise<number>;
  /** The committed balance of an account, read apart from the participant. */
  balance(account: string): Promise<number>;
  /** Stops the participant as a process exit would (nothing undecided is resolved). */
  close(): Promise<void>;
}

export interface ContractBackend {
  name: string;
  /** A fresh ledger database; the function opens a participant on it, again after a close (a restart). */
  create(t: TestContext): Promise<(options: { lockWaitMs?: number }) => Promise<ContractParticipant>>;
}

const txId = (): string => newTxId(0);
const credit = (account: string, amount: number) => ({ op: 'credit', args: { account, amount } });
/** A prepare as the coordinator sends it: with a deadline (one without is refused). */
const prepare = (id: string, ...operations: ReturnType<typeof credit>[]): BranchItem => ({
  action: BranchAction.PREPARE,
  txId: id,
  service: LEDGER,
  operations,
  deadline: Date.now() + 5_000,
});
const commit = (id: string): BranchItem => ({ action: BranchAction.COMMIT, txId: id, service: LEDGER });
const rollback = (id: string): BranchItem => ({ action: BranchAction.ROLLBACK, txId: id, service: LEDGER });

async function one(p: ContractParticipant, item: BranchItem): Promise<BranchItemResult> {
  return (await p.handleBatch({ protocolVersion: PROTOCOL_VERSION, items: [item] })).results[0]!;
}

async function opened(t: TestContext, backend: ContractBackend, options: { lockWaitMs?: number } = {}) {
  const open = await backend.create(t);
  const p = await open(options);
  t.after(() => p.close());
  return { open, p };
}

export function storageContract(backend: ContractBackend): void {
  const name = (what: string) => `storage contract (${backend.name}): ${what}`;

  test(name('a duplicate prepare answers yes without a second change; a duplicate commit applies once'), async (t) => {
    const { p } = await opened(t, backend);
    const id = txId();
    assert.equal((await one(p, prepare(id, credit('a', 5)))).status, 'ok');
    assert.deepEqual(await p.preparedIds(), [id]);
    assert.equal((await one(p, prepare(id, credit('a', 5)))).status, 'ok');
    assert.equal((await one(p, commit(id))).status, 'ok');
    assert.equal((await one(p, commit(id))).status, 'ok');
    assert.equal(await p.balance('a'), START_BALANCE + 5, 'credited exactly once');
    assert.deepEqual(await p.preparedIds(), []);
    assert.equal((await one(p, prepare(id, credit('a', 5)))).status, 'ok', 'a stray prepare after the commit repeats the yes');
    assert.equal(await p.balance('a'), START_BALANCE + 5);
    assert.equal((await one(p, rollback(id))).reason, 'ALREADY_COMMITTED', 'a stale rollback leaves the commit standing');
    assert.equal(await p.balance('a'), START_BALANCE + 5);
  });

  test(name('a rollback before the prepare is recorded; the late prepare changes nothing and votes no'), async (t) => {
    const { p } = await opened(t, backend);
    const id = txId();
    assert.equal((await one(p, rollback(id))).status, 'ok');
    const late = await one(p, prepare(id, credit('a', 7)));
    assert.equal(late.status, 'no');
    assert.equal(late.reason, 'ALREADY_ROLLED_BACK');
    assert.equal((await one(p, commit(id))).reason, 'TXM_COMMIT_WITHOUT_PREPARE');
    assert.equal(await p.balance('a'), START_BALANCE);
    assert.deepEqual(await p.preparedIds(), []);
  });

  test(name('a prepare after its rollback votes no; the rolled-back change is gone'), async (t) => {
    const { p } = await opened(t, backend);
    const id = txId();
    assert.equal((await one(p, prepare(id, credit('a', -30)))).status, 'ok');
    assert.equal((await one(p, rollback(id))).status, 'ok');
    assert.equal((await one(p, rollback(id))).status, 'ok', 'a duplicate rollback is acknowledged');
    assert.equal((await one(p, prepare(id, credit('a', -30)))).reason, 'ALREADY_ROLLED_BACK');
    assert.equal(await p.balance('a'), START_BALANCE);
    // The rolled-back debit no longer holds anything: the whole balance can go.
    const all = txId();
    assert.equal((await one(p, prepare(all, credit('a', -START_BALANCE)))).status, 'ok');
    assert.equal((await one(p, commit(all))).status, 'ok');
    assert.equal(await p.balance('a'), 0);
  });

  test(name('a business refusal is a stored no; in a batch it undoes only its own branch'), async (t) => {
    const { p } = await opened(t, backend);
    const [poor, fine] = [txId(), txId()];
    const answers = (await p.handleBatch({ protocolVersion: PROTOCOL_VERSION, items: [prepare(poor, credit('a', -500)), prepare(fine, credit('b', -10))] })).results;
    assert.deepEqual(answers.map((r) => [r.status, r.reason]), [['no', 'INSUFFICIENT_FUNDS'], ['ok', undefined]]);
    assert.equal((await one(p, prepare(poor, credit('a', -500)))).reason, 'INSUFFICIENT_FUNDS', 'the duplicate gets the same no');
    assert.equal((await one(p, rollback(poor))).status, 'ok');
    assert.equal((await one(p, commit(fine))).status, 'ok');
    assert.deepEqual([await p.balance('a'), await p.balance('b')], [START_BALANCE, START_BALANCE - 10]);
  });

  test(name('finished branches are pruned after the retention (a committed one leaves its tombstone); a prepared one never is'), async (t) => {
    const { p } = await opened(t, backend);
    const [committed, early, refused, held] = [txId(), txId(), txId(), txId()];
    assert.equal((await one(p, prepare(committed, credit('a', 1)))).status, 'ok');
    assert.equal((await one(p, commit(committed))).status, 'ok');
    assert.equal((await one(p, rollback(early))).status, 'ok');
    assert.equal((await one(p, prepare(refused, credit('a', -1000)))).status, 'no');
    assert.equal((await one(p, prepare(held, credit('b', 1)))).status, 'ok');
    assert.equal(await p.prune(Date.now()), 0, 'nothing is older than the retention yet');
    assert.equal(await p.prune(Date.now() + DEFAULT_BRANCH_RETENTION_MS + 1), 3);
    assert.deepEqual(await p.preparedIds(), [held]);
    // The committed branch left its tombstone: a commit re-sent late is acknowledged from that proof and
    // applies nothing again; a rollback of it is refused as ALREADY_COMMITTED.
    assert.equal((await one(p, commit(committed))).status, 'ok', 'a late commit of a pruned committed branch');
    const late = await one(p, rollback(committed));
    assert.deepEqual([late.status, late.reason], ['ok', 'ALREADY_COMMITTED']);
    assert.equal((await one(p, commit(held))).status, 'ok', 'the held branch still commits');
    assert.deepEqual([await p.balance('a'), await p.balance('b')], [START_BALANCE + 1, START_BALANCE + 1]);
  });

  test(name('after a restart a prepared branch still keeps its keys, and its outcome still applies'), async (t) => {
    const { open, p } = await opened(t, backend, { lockWaitMs: 200 });
    const [first, second] = [txId(), txId()];
    assert.equal((await one(p, prepare(first, credit('a', -60)))).status, 'ok');
    await p.close();

    const again = await open({ lockWaitMs: 200 });
    t.after(() => again.close());
    assert.deepEqual(await again.preparedIds(), [first]);
    const blocked = await one(again, prepare(second, credit('a', -60)));
    assert.equal(blocked.status, 'no');
    assert.equal(blocked.reason, 'LOCK_TIMEOUT', 'the restored branch still holds account a');
    assert.equal((await one(again, prepare(first, credit('a', -60)))).status, 'ok', 'the retried prepare gets the yes again');
    assert.equal((await one(again, commit(first))).status, 'ok');
    assert.equal(await again.balance('a'), START_BALANCE - 60);
    assert.deepEqual(await again.preparedIds(), []);
    const third = txId();
    assert.equal((await one(again, prepare(third, credit('a', -40)))).status, 'ok', 'the key is free once the branch is decided');
    assert.equal((await one(again, commit(third))).status, 'ok');
    assert.equal(await again.balance('a'), 0);
  });
}
