/**
 * Failures of calls to sidecars become catalogue reasons with the raw text beside them: the classifier
 * on its own, the HTTP transport against real sockets, and a whole transaction to a sidecar that refuses
 * connections.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { errors as undiciErrors } from 'undici';
import { TxmeshError, isErrorCode, isReason, type TransactionResult, type TransactionStatus } from '@txmesh/protocol';
import { startCoordinator } from './app.ts';
import { BadAnswerError, BranchCallError, SidecarHttpError, branchCallErrorOf } from './branch-errors.ts';
import { HttpBranchTransport } from './http-transport.ts';

const systemError = (code: string, message: string) => Object.assign(new Error(message), { code });

/** A port nobody listens on (taken, then released). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function sidecarAnswering(t: TestContext, status: number, body: string, contentType = 'application/json'): Promise<string> {
  const app = Fastify();
  app.post('/txmesh/v1/batch', async (_request, reply) => reply.status(status).header('content-type', contentType).send(body));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  return url;
}

const commit = [{ action: 'commit' as const, txId: '0-abc-0000000000000001', service: 'inv' }];

describe('branchCallErrorOf', () => {
  it('names connection failures UNREACHABLE and time-outs TIMEOUT, keeping the raw text out of the reason', () => {
    const cases: [unknown, string][] = [
      [systemError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:40867'), 'UNREACHABLE'],
      [systemError('ECONNRESET', 'read ECONNRESET'), 'UNREACHABLE'],
      [systemError('ENOTFOUND', 'getaddrinfo ENOTFOUND sidecar.invalid'), 'UNREACHABLE'],
      [new undiciErrors.SocketError('other side closed'), 'UNREACHABLE'],
      [new TypeError('fetch failed', { cause: systemError('EHOSTUNREACH', 'connect EHOSTUNREACH 10.0.0.9:80') }), 'UNREACHABLE'],
      [new undiciErrors.HeadersTimeoutError(), 'TIMEOUT'],
      [new undiciErrors.ConnectTimeoutError(), 'TIMEOUT'],
      [new DOMException('The operation was aborted due to timeout', 'TimeoutError'), 'TIMEOUT'],
      [new SyntaxError('Unexpected token < in JSON'), 'BAD_ANSWER'],
      [new TxmeshError('TXM_SHUTTING_DOWN', 'sidecar closing'), 'TXM_SHUTTING_DOWN'],
      [new Error('something odd at 127.0.0.1:1'), 'ERROR'],
      ['a string', 'ERROR'],
    ];
    for (const [err, reason] of cases) {
      const coded = branchCallErrorOf(err, 'http://127.0.0.1:40867');
      assert.ok(coded instanceof BranchCallError);
      assert.equal(coded.reason, reason, String(err));
      assert.ok(isReason(coded.reason) || isErrorCode(coded.reason), `${coded.reason} is in a catalogue`);
    }
    const refused = branchCallErrorOf(systemError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:40867'), 'http://127.0.0.1:40867');
    assert.match(refused.message, /ECONNREFUSED 127\.0\.0\.1:40867/, 'the raw text stays in the message (details)');
    assert.equal(branchCallErrorOf(refused), refused, 'coded errors pass through');
  });
});

describe('HttpBranchTransport failures are coded', () => {
  it('a refused connection is UNREACHABLE', async (t) => {
    const transport = new HttpBranchTransport();
    t.after(() => transport.close());
    const port = await closedPort();
    await assert.rejects(transport.send(`http://127.0.0.1:${port}`, commit, 2000), (err: unknown) => err instanceof BranchCallError && err.reason === 'UNREACHABLE' && err.message.includes('ECONNREFUSED'));
  });

  it('an HTTP error takes the code of its body when it has one, else SIDECAR_ERROR; a malformed answer is BAD_ANSWER', async (t) => {
    const transport = new HttpBranchTransport();
    t.after(() => transport.close());
    const coded = await sidecarAnswering(t, 503, JSON.stringify(new TxmeshError('TXM_SHUTTING_DOWN').toBody()));
    await assert.rejects(transport.send(coded, commit, 2000), (err: unknown) => err instanceof SidecarHttpError && err.reason === 'TXM_SHUTTING_DOWN' && err.statusCode === 503);
    const proxy = await sidecarAnswering(t, 502, '<html>Bad Gateway</html>', 'text/html');
    await assert.rejects(transport.send(proxy, commit, 2000), (err: unknown) => err instanceof SidecarHttpError && err.reason === 'SIDECAR_ERROR' && err.message.includes('502'));
    // A registered address that is some internal page: its content never travels back (as a vote's details).
    const internal = await sidecarAnswering(t, 404, '{"admin":"secret-token-123"}');
    await assert.rejects(transport.send(internal, commit, 2000), (err: unknown) => {
      assert.ok(err instanceof SidecarHttpError);
      assert.doesNotMatch(err.message, /secret-token/);
      assert.match(err.message, /answered HTTP 404: a body that is not a txmesh error \(28 bytes, not shown\)/);
      return true;
    });
    for (const body of ['not json', '{"protocolVersion":1}', '{"protocolVersion":99,"results":[]}', '{"protocolVersion":1,"results":[{"txId":1}]}']) {
      const url = await sidecarAnswering(t, 200, body, 'text/plain');
      await assert.rejects(transport.send(url, commit, 2000), (err: unknown) => err instanceof BadAnswerError && err.reason === 'BAD_ANSWER', body);
    }
  });
});

describe('a sidecar that refuses connections', () => {
  it('aborts the transaction with a catalogue reason and no address or port in it; the raw error is in details', async (t) => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-refused-'));
    t.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    const coordinator = await startCoordinator({ shard: 0, shards: 1, dataDir });
    t.after(() => coordinator.close());
    const port = await closedPort();
    const post = (url: string, body: object) =>
      fetch(`${coordinator.url}${url}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal((await post('/v1/services', { service: 'inventory', sidecarUrl: `http://127.0.0.1:${port}` })).status, 200);
    const answer = await post('/v1/transactions', { participants: [{ service: 'inventory', operations: [{ op: 'reserve' }] }], timeoutMs: 5000 });
    assert.equal(answer.status, 200);
    const result = (await answer.json()) as TransactionResult;
    assert.equal(result.outcome, 'aborted');
    assert.equal(result.reason, 'UNREACHABLE');
    assert.ok(isReason(result.reason));
    assert.doesNotMatch(result.reason ?? '', /\d|:/, 'no address or port in the reason');
    assert.deepEqual(result.participants.map((p) => [p.service, p.vote, p.reason]), [['inventory', 'none', 'UNREACHABLE']]);
    assert.match(result.details ?? '', new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}`), 'the raw error, for people');
    assert.equal(result.participants[0]!.details, result.details);
    const status = (await (await fetch(`${coordinator.url}/v1/transactions/${result.txId}`)).json()) as TransactionStatus;
    assert.equal(status.reason, 'UNREACHABLE');
    assert.equal(status.branches[0]!.reason, 'UNREACHABLE');
    assert.match(status.branches[0]!.details ?? '', /ECONNREFUSED/);
  });
});
