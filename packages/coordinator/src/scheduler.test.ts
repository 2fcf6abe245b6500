import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OverloadedError, Scheduler, type Release } from './scheduler.ts';

/** Lets pending promise callbacks run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('Scheduler', () => {
  it('holds prepares beyond the limit and grants freed slots to the oldest transaction first', async () => {
    const scheduler = new Scheduler({ initialLimit: 2, minLimit: 1, maxLimit: 2 });
    const held = [await scheduler.acquire('inv', 100), await scheduler.acquire('inv', 101)];
    const granted: number[] = [];
    const wait = (age: number): Promise<Release | undefined> =>
      scheduler.acquire('inv', age).then((r) => {
        granted.push(age);
        return r;
      });
    // Arrive newest first; must be served oldest first.
    const waiting = [wait(300), wait(200), wait(250), wait(150)];
    await settle();
    assert.deepEqual(granted, [], 'no slot is free');
    assert.equal(scheduler.view('inv').queued, 4);
    held[0]!(5, true);
    await settle();
    assert.deepEqual(granted, [150]);
    held[1]!(5, true);
    await settle();
    assert.deepEqual(granted, [150, 200]);
    for (const r of await Promise.all(waiting.slice(1, 2).concat(waiting.slice(3)))) r?.(5, true);
    await settle();
    assert.deepEqual(granted, [150, 200, 250, 300]);
    // Another service has its own lane and is not held up.
    assert.ok(await scheduler.acquire('pay', 999));
  });

  it('tryAcquire grants a free slot at once and nothing while the lane is full or has waiters; disabled, always', async () => {
    const scheduler = new Scheduler({ initialLimit: 1, minLimit: 1, maxLimit: 1 });
    const first = scheduler.tryAcquire('inv');
    assert.ok(first, 'a free slot is granted without a promise');
    assert.equal(scheduler.view('inv').inFlight, 1);
    assert.equal(scheduler.tryAcquire('inv'), undefined, 'the lane is full');
    const waiting = scheduler.acquire('inv', 5);
    first(1, true);
    const second = await waiting;
    assert.ok(second, 'the waiter got the freed slot');
    assert.equal(scheduler.tryAcquire('inv'), undefined, 'the waiter holds it now');
    const queued = scheduler.acquire('inv', 6);
    second(1, true);
    // The slot goes to the queued waiter, never to a caller that jumps the queue.
    assert.equal(scheduler.tryAcquire('inv'), undefined);
    (await queued)?.(1, true);
    assert.ok(scheduler.tryAcquire('inv'), 'free again once everyone released');
    const off = new Scheduler({ enabled: false, initialLimit: 1, minLimit: 1, maxLimit: 1 });
    assert.ok(off.tryAcquire('inv') && off.tryAcquire('inv'), 'a disabled scheduler never holds a prepare');
  });

  it('serves hundreds of waiters in age order, arrival order among equal ages', async () => {
    const scheduler = new Scheduler({ initialLimit: 1, minLimit: 1, maxLimit: 1 });
    const first = await scheduler.acquire('inv', 0);
    const granted: Array<[number, number]> = [];
    let x = 12345;
    const waiting = Array.from({ length: 500 }, (_, arrival) => {
      x = (x * 1103515245 + 12345) % 2147483648;
      const age = 1 + (x % 97); // many equal ages
      return scheduler.acquire('inv', age).then((release) => {
        granted.push([age, arrival]);
        release!(1, true);
      });
    });
    first!(1, true);
    await Promise.all(waiting);
    const expected = [...granted].sort((p, q) => p[0] - q[0] || p[1] - q[1]);
    assert.equal(granted.length, 500);
    assert.deepEqual(granted, expected);
  });

  it('gives a withdrawn waiter nothing and passes its turn on', async () => {
    const scheduler = new Scheduler({ initialLimit: 1, minLimit: 1, maxLimit: 1 });
    const first = await scheduler.acquire('inv', 1);
    let decided = false;
    const withdrawnOne = scheduler.acquire('inv', 2, () => decided);
    const later = scheduler.acquire('inv', 3);
    decided = true;
    first!(1, true);
    assert.equal(await withdrawnOne, undefined);
    assert.ok(await later, 'the next waiter got the slot');
    assert.equal(scheduler.view('inv').inFlight, 1);
  });

  it('shrinks the limit when latency rises well above the best seen, and grows it while latency stays low and the limit is used', async () => {
    const scheduler = new Scheduler({ initialLimit: 16, minLimit: 1, maxLimit: 64 });
    const run = async (n: number, latencyMs: number): Promise<void> => {
      const slots = await Promise.all(Array.from({ length: n }, (_, i) => scheduler.acquire('svc', i)));
      for (const release of slots) release!(latencyMs, true);
    };
    await run(16, 2);
    const grown = scheduler.view('svc').limit;
    assert.ok(grown > 16, `limit grew under low latency and full use: ${grown}`);
    for (let i = 0; i < 10; i++) await run(Math.min(scheduler.view('svc').limit, 16), 40);
    const shrunk = scheduler.view('svc').limit;
    assert.ok(shrunk < 16, `limit shrank under high latency: ${shrunk}`);
    assert.ok(shrunk >= 1);
    assert.equal(scheduler.view('svc').bestLatencyMs !== undefined, true);
  });

  it('does not grow the limit of a service that reports its CPU near its quota', async () => {
    const scheduler = new Scheduler({ initialLimit: 8, minLimit: 1, maxLimit: 64, now: () => 1000 });
    scheduler.noteReport('svc', { at: 1000, cpuPercent: 97 });
    const slots = await Promise.all(Array.from({ length: 8 }, (_, i) => scheduler.acquire('svc', i)));
    for (const release of slots) release!(2, true);
    assert.equal(scheduler.view('svc').limit, 8);
  });

  it('refuses a new transaction early when a needed service would make it wait too long, with Retry-After seconds', async () => {
    const scheduler = new Scheduler({ initialLimit: 1, minLimit: 1, maxLimit: 1, maxQueueWaitMs: 100 });
    // Teach it the service's latency: 60 ms per prepare.
    (await scheduler.acquire('slow', 0))!(60, true);
    const held = await scheduler.acquire('slow', 1);
    void scheduler.acquire('slow', 2);
    assert.doesNotThrow(() => scheduler.admit(['fast']), 'other services are not affected');
    let refused: unknown;
    try {
      scheduler.admit(['fast', 'slow']);
    } catch (err) {
      refused = err;
    }
    assert.ok(refused instanceof OverloadedError);
    assert.equal(refused.code, 'TXM_OVERLOADED');
    assert.equal(refused.status, 429);
    assert.ok(refused.retryAfterSeconds >= 1);
    assert.equal(scheduler.stats().refusedOverloaded, 1);
    // A short transaction budget lowers the bound to half of it.
    const roomy = new Scheduler({ initialLimit: 1, minLimit: 1, maxLimit: 1, maxQueueWaitMs: 10_000 });
    (await roomy.acquire('slow', 0))!(60, true);
    const busy = await roomy.acquire('slow', 1);
    assert.doesNotThrow(() => roomy.admit(['slow'], 5000));
    assert.throws(() => roomy.admit(['slow'], 100), OverloadedError);
    busy!(60, true);
    held!(60, true);
  });

  it('switched off, grants every slot at once and refuses nothing, while still counting', async () => {
    const scheduler = new Scheduler({ enabled: false, initialLimit: 1, minLimit: 1, maxQueueWaitMs: 0 });
    const slots = await Promise.all(Array.from({ length: 50 }, (_, i) => scheduler.acquire('svc', i)));
    assert.ok(slots.every(Boolean));
    assert.equal(scheduler.view('svc').inFlight, 50);
    assert.doesNotThrow(() => scheduler.admit(['svc']));
    for (const release of slots) release!(1000, true);
    assert.equal(scheduler.view('svc').inFlight, 0);
  });

  it('orders by expected latency: the service measured slowest first', async () => {
    const scheduler = new Scheduler();
    (await scheduler.acquire('a', 0))!(1, true);
    (await scheduler.acquire('b', 0))!(30, true);
    scheduler.noteReport('c', { at: Date.now(), latencyP50Ms: 10 });
    const services = ['a', 'b', 'c', 'unknown'];
    const sorted = [...services].sort((x, y) => (scheduler.expectedLatencyMs(y) ?? 0) - (scheduler.expectedLatencyMs(x) ?? 0));
    assert.deepEqual(sorted, ['b', 'c', 'a', 'unknown']);
  });
});
