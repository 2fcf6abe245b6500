import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { TxmeshError } from './errors.ts';
import { startProbeListener, type ProbeRoute } from './probe-listener.ts';

interface Probed {
  status: number;
  body: { error?: { code: string; details?: string }; ok?: boolean; n?: number };
}

/**
 * Asks `url` from another process while this thread is blocked (spawnSync holds the event loop, as a long
 * turn under overload does); the child waits `delayMs` first.
 */
function probeWhileBlocked(url: string, delayMs: number): Probed {
  const script = `setTimeout(async () => { const r = await fetch(${JSON.stringify(url)}); process.stdout.write(JSON.stringify({ status: r.status, body: await r.json() })); }, ${delayMs});`;
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(child.status, 0, `the probing child failed: ${child.stderr}`);
  return JSON.parse(child.stdout) as Probed;
}

async function listen(t: { after(fn: () => unknown): void }, probes: ProbeRoute[]) {
  const listener = await startProbeListener({ host: '127.0.0.1', port: 0, role: 'test server', probes, beatMs: 20 });
  t.after(() => listener.close());
  return listener;
}

test('a probe is answered while the main event loop is blocked, with the answer it last rendered', async (t) => {
  let n = 0;
  const listener = await listen(t, [{ path: '/health', answer: () => ({ ok: true, n: ++n }), stallMs: 10_000 }]);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const probed = probeWhileBlocked(`${listener.url}/health`, 0);
  assert.equal(probed.status, 200);
  assert.equal(probed.body.ok, true);
  assert.ok((probed.body.n ?? 0) > 1, 'the answers are re-rendered every beat');
});

test('a route that refuses is answered in the catalogue shape; other paths and methods are 404', async (t) => {
  const listener = await listen(t, [
    {
      path: '/ready',
      answer: () => {
        throw new TxmeshError('TXM_NOT_READY', 'still recovering');
      },
      stallMs: 10_000,
    },
  ]);
  const ready = await fetch(`${listener.url}/ready?x=1`);
  assert.deepEqual([ready.status, await ready.json()], [503, new TxmeshError('TXM_NOT_READY', 'still recovering').toBody()]);
  for (const [method, path] of [['GET', '/other'], ['POST', '/ready']] as const) {
    const other = await fetch(`${listener.url}${path}`, { method });
    assert.equal(other.status, 404);
    assert.equal(((await other.json()) as { error: { code: string } }).error.code, 'TXM_NOT_FOUND');
  }
});

test('a main loop silent past the bound fails the probe with TXM_STALLED; once it turns again the probe recovers', async (t) => {
  const listener = await listen(t, [{ path: '/health', answer: () => ({ ok: true }), stallMs: 300 }]);
  // Blocked for at least 1 s (the child sleeps first): longer than the bound.
  const stalled = probeWhileBlocked(`${listener.url}/health`, 1000);
  assert.equal(stalled.status, 503);
  assert.equal(stalled.body.error?.code, 'TXM_STALLED');
  assert.match(stalled.body.error?.details ?? '', /the event loop of the test server has not turned for \d+ ms \(bound 300 ms\)/);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal((await fetch(`${listener.url}/health`)).status, 200);
});

test('a port already taken is refused at start, with the address', async (t) => {
  const first = await listen(t, [{ path: '/health', answer: () => ({ ok: true }), stallMs: 1000 }]);
  const port = Number(new URL(first.url).port);
  await assert.rejects(startProbeListener({ host: '127.0.0.1', port, role: 'second', probes: [] }), /probe port 127\.0\.0\.1:\d+: .*EADDRINUSE/);
});
