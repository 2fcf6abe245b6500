/**
 * The commands a newcomer runs, end to end: `txmesh demo --json` on a small catalog, and the
 * coordinator's answers to bad input over real HTTP, which must change nothing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { test } from 'node:test';
import { TXMESH_BIN, goodOrder, postJson, startTestCluster, summaries } from './helpers.ts';
import { newTxId } from '@txmesh/protocol';


function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [TXMESH_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function declaredOversizedPost(url: string, declaredBytes: number, auth: Record<string, string>): Promise<{ status: number; body: { error: { code: string } } }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'content-length': String(declaredBytes) } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => {
        req.destroy();
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { error: { code: string } } });
        } catch (error) {
          reject(error);
        }
      });
    });
    req.on('error', (error) => reject(error));
    req.write('{"participants": [], "pad": "');
  });
}

test('txmesh demo --json commits and business-aborts orders and the invariants hold', async () => {
  const { code, stdout, stderr } = await run([
    'demo', '--orders', '300', '--concurrency', '16', '--shards', '2', '--skus', '30', '--stock', '8', '--accounts', '30', '--balance', '250', '--json',
  ]);
  assert.equal(code, 0, `demo failed:\n${stderr}`);
  const lastLine = stdout.trim().split('\n').at(-1)!;
  const summary = JSON.parse(lastLine) as Record<string, any>;
  for (const key of ['committed', 'aborted', 'throughputTps', 'p50Ms', 'p99Ms', 'invariantsOk']) assert.ok(key in summary, key);
  assert.equal(summary.committed + summary.aborted, 300);
  assert.ok(summary.committed > 0, 'some orders commit');
  assert.ok((summary.abortedByReason.OUT_OF_STOCK ?? 0) > 0, 'some orders abort for lack of stock');
  assert.ok((summary.abortedByReason.INSUFFICIENT_FUNDS ?? 0) > 0, 'some orders abort for lack of money');
  assert.equal(summary.invariantsOk, true);
  assert.equal(summary.atomicityViolations, 0);
  assert.equal(summary.lostCommits, 0);
  assert.ok(summary.throughputTps > 0 && summary.p99Ms >= summary.p50Ms);
});

test('txmesh refuses unknown commands and flags with a usage message', async () => {
  const unknown = await run(['demo', '--ordres', '5']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown flag --ordres/);
  const badValue = await run(['demo', '--orders', 'many']);
  assert.equal(badValue.code, 2);
  assert.match(badValue.stderr, /--orders must be an integer/);
});

test('bad input gets a coded 4xx over real HTTP and changes nothing', async (t) => {
  const cluster = await startTestCluster(t);
  const url = `${cluster.coordinators[0]!.url}/v1/transactions`;
  const stats = async (): Promise<Record<string, number>> =>
    (await (await fetch(`${cluster.coordinators[0]!.url}/v1/stats`)).json()) as Record<string, number>;
  const before = await stats();

  const cases: [string, RequestInit, number, string][] = [
    ['malformed JSON', { body: '{"participants": [', headers: { 'content-type': 'application/json' } }, 400, 'TXM_BAD_REQUEST'],
    ['not JSON', { body: 'participants=1', headers: { 'content-type': 'text/plain' } }, 415, 'TXM_UNSUPPORTED_MEDIA_TYPE'],
    ['empty participants', { body: JSON.stringify({ participants: [] }), headers: { 'content-type': 'application/json' } }, 400, 'TXM_NO_PARTICIPANTS'],
    ['unknown service', { body: JSON.stringify({ participants: [{ service: 'warehouse', operations: [{ op: 'pick' }] }] }), headers: { 'content-type': 'application/json' } }, 422, 'TXM_UNKNOWN_SERVICE'],
    ['bad timeout', { body: JSON.stringify({ ...goodOrder('o-bad'), timeoutMs: -5 }), headers: { 'content-type': 'application/json' } }, 400, 'TXM_BAD_TIMEOUT'],
  ];
  for (const [name, init, status, code] of cases) {
    const res = await fetch(url, { method: 'POST', ...init, headers: { ...(init.headers as Record<string, string>), ...cluster.clientHeaders } });
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(res.status, status, name);
    assert.equal(body.error.code, code, name);
    assert.ok(body.error.message.length > 20, `${name}: a sentence a person can act on`);
  }
  // An oversized body is refused from its content-length alone, and the server then closes the connection
  // (it will not read megabytes it refuses). Sending the whole body first races that close, so the request
  // declares the size, sends a prefix and reads the answer.
  const oversized = await declaredOversizedPost(url, 2 * 1024 * 1024, cluster.clientHeaders);
  assert.equal(oversized.status, 413);
  assert.equal(oversized.body.error.code, 'TXM_BODY_TOO_LARGE');

  const notFound = await fetch(`${cluster.coordinators[0]!.url}/v1/transactions/${newTxId(0)}`, { headers: cluster.clientHeaders });
  assert.equal(notFound.status, 404);
  const badId = await fetch(`${cluster.coordinators[0]!.url}/v1/transactions/nonsense`, { headers: cluster.clientHeaders });
  assert.equal(badId.status, 400);

  const after = await stats();
  assert.equal(after.committed, before.committed);
  assert.equal(after.aborted, before.aborted);
  for (const [name, summary] of await summaries(cluster)) {
    assert.equal(summary.preparedBranches, 0, name);
    assert.equal(summary.committedTxIds.length, 0, name);
  }

  // The coordinator is still healthy and commits a good order.
  const ok = await postJson(url, goodOrder('order-after-bad-input'));
  assert.equal(ok.body.outcome, 'committed');
  // Ordinary traffic reaches the service through its sidecar, transaction header included.
  const viaSidecar = await fetch(`${cluster.sidecars.get('inventory')!.url}/health`, { headers: { 'x-txmesh-tx': ok.body.txId } });
  assert.equal(viaSidecar.status, 200);
});
