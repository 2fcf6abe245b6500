import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LockMode } from '@txmesh/protocol';
import { LockManager, LockWaitError, mergeLockRequests } from './lock-manager.ts';
import { settledWithin } from './test-support.ts';

const S = LockMode.SHARED;
const X = LockMode.EXCLUSIVE;
const failureOf = (p: Promise<void>): Promise<string> => p.then(() => 'granted', (err: unknown) => (err as LockWaitError).failure);

test('shared locks: readers share a key, a writer waits for all of them', async () => {
  const locks = new LockManager();
  await locks.acquire('k', 'R1', S, 100);
  await locks.acquire('k', 'R2', S, 100);
  assert.deepEqual(locks.holdersOf('k').sort(), ['R1', 'R2']);
  const writer = locks.acquire('k', 'W', X, 2_000);
  assert.equal(await settledWithin(writer, 30), 'pending');
  locks.release('R1');
  assert.equal(await settledWithin(writer, 30), 'pending', 'one reader is still in');
  locks.release('R2');
  await writer;
  assert.deepEqual(locks.holdersOf('k'), ['W']);
  assert.equal(await failureOf(locks.acquire('k', 'R3', S, 20)), 'timeout', 'a writer excludes readers');
});

test('shared locks: a reader arriving behind a queued writer waits its turn (no writer starvation)', async () => {
  const locks = new LockManager();
  await locks.acquire('k', 'R1', S, 100);
  const order: string[] = [];
  const writer = locks.acquire('k', 'W', X, 2_000).then(() => order.push('W'));
  const late = locks.acquire('k', 'R2', S, 2_000).then(() => order.push('R2'));
  assert.equal(await settledWithin(late, 30), 'pending', 'R2 does not overtake the writer although R1 only reads');
  locks.release('R1');
  await writer;
  assert.equal(await settledWithin(late, 30), 'pending');
  locks.release('W');
  await late;
  assert.deepEqual(order, ['W', 'R2']);
});

test('shared locks: readers queued behind a writer are let in together', async () => {
  const locks = new LockManager();
  await locks.acquire('k', 'W', X, 100);
  const r1 = locks.acquire('k', 'R1', S, 2_000);
  const r2 = locks.acquire('k', 'R2', S, 2_000);
  const w2 = locks.acquire('k', 'W2', X, 2_000);
  locks.release('W');
  await Promise.all([r1, r2]);
  assert.deepEqual(locks.holdersOf('k').sort(), ['R1', 'R2']);
  assert.equal(await settledWithin(w2, 30), 'pending');
  locks.release('R1');
  locks.release('R2');
  await w2;
});

test('a writer that gives up at the head lets the readers behind it in', async () => {
  const locks = new LockManager();
  await locks.acquire('k', 'R1', S, 100);
  const writer = failureOf(locks.acquire('k', 'W', X, 20));
  const reader = locks.acquire('k', 'R2', S, 2_000);
  assert.equal(await writer, 'timeout');
  await reader;
  assert.deepEqual(locks.holdersOf('k').sort(), ['R1', 'R2']);
});

test('upgrade: the only reader becomes the writer at once; with another reader it waits, ahead of queued writers', async () => {
  const locks = new LockManager();
  await locks.acquire('k', 'T', S, 100);
  await locks.acquire('k', 'T', X, 100);
  assert.equal(locks.modeOf('k', 'T'), X);
  await locks.acquire('k', 'T', S, 100); // weaker re-request: keeps exclusive
  assert.equal(locks.modeOf('k', 'T'), X);
  locks.release('T');

  await locks.acquire('k', 'A', S, 100);
  await locks.acquire('k', 'B', S, 100);
  const order: string[] = [];
  const writer = locks.acquire('k', 'W', X, 2_000).then(() => order.push('W'));
  const upgrade = locks.acquire('k', 'A', X, 2_000).then(() => order.push('A'));
  assert.deepEqual(
    locks.edges().filter((e) => e.waiter === 'A').map(({ waiter, holder, key }) => ({ waiter, holder, key })),
    [{ waiter: 'A', holder: 'B', key: 'k' }],
    'the upgrade waits for the other reader only',
  );
  locks.release('B');
  await upgrade;
  assert.equal(locks.modeOf('k', 'A'), X);
  assert.equal(await settledWithin(writer, 30), 'pending');
  locks.release('A');
  await writer;
  assert.deepEqual(order, ['A', 'W']);
});

test('two readers upgrading the same key form a cycle in edges(); releasing one lets the other through', async () => {
  const locks = new LockManager();
  await locks.acquire('k', 'A', S, 100);
  await locks.acquire('k', 'B', S, 100);
  const a = failureOf(locks.acquire('k', 'A', X, 2_000));
  const b = failureOf(locks.acquire('k', 'B', X, 2_000));
  const edges = locks.edges().map((e) => `${e.waiter}->${e.holder}`).sort();
  assert.deepEqual(edges, ['A->B', 'B->A']);
  locks.cancelWaits('B');
  locks.release('B');
  assert.equal(await a, 'granted');
  assert.equal(await b, 'cancelled');
  assert.deepEqual(locks.edges(), []);
});

test('edges: a waiter waits for conflicting holders and conflicting waiters ahead, not for fellow readers', async () => {
  const locks = new LockManager();
  await locks.acquire('k', 'H', X, 100);
  void failureOf(locks.acquire('k', 'R1', S, 2_000));
  void failureOf(locks.acquire('k', 'R2', S, 2_000));
  void failureOf(locks.acquire('k', 'W', X, 2_000));
  const edges = locks.edges().map((e) => `${e.waiter}->${e.holder}`).sort();
  assert.deepEqual(edges, ['R1->H', 'R2->H', 'W->H', 'W->R1', 'W->R2']);
  locks.cancelAll();
});

test('restore: several readers may hold a key again after a restart, a writer conflicting with them may not', () => {
  const locks = new LockManager();
  locks.hold('k', 'R1', S);
  locks.hold('k', 'R2', S);
  assert.throws(() => locks.hold('k', 'W', X), /cannot restore/);
  locks.hold('j', 'W', X);
  assert.throws(() => locks.hold('j', 'R1', S), /cannot restore/);
  assert.equal(locks.heldCount, 2);
});

test('mergeLockRequests: one entry per key, the strongest mode, sorted', () => {
  assert.deepEqual(
    mergeLockRequests([
      { key: 'b', mode: S },
      { key: 'a', mode: X },
      { key: 'b', mode: X },
      { key: 'a', mode: S },
      { key: 'c', mode: S },
    ]),
    [
      { key: 'a', mode: X },
      { key: 'b', mode: X },
      { key: 'c', mode: S },
    ],
  );
});

test('fairness: a writer behind a steady stream of overlapping readers is served before the readers that came after it', async () => {
  const locks = new LockManager();
  const order: string[] = [];
  const reader = async (id: string): Promise<void> => {
    await locks.acquire('k', id, S, 5_000);
    order.push(id);
    setTimeout(() => locks.release(id), 15);
  };
  const stream: Promise<void>[] = [];
  let writer: Promise<void> | undefined;
  for (let i = 0; i < 20; i++) {
    // Readers overlap (each holds 15 ms, one arrives every 5 ms): without FIFO the key would never be free.
    stream.push(reader(`R${i}`));
    if (i === 3) writer = locks.acquire('k', 'W', X, 5_000).then(() => {
      order.push('W');
      setTimeout(() => locks.release('W'), 5);
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await Promise.all([...stream, writer]);
  assert.deepEqual(order.slice(0, 5), ['R0', 'R1', 'R2', 'R3', 'W'], 'the writer goes right after the readers that were in before it');
});
