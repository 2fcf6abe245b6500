/**
 * POST /v1/transactions over a real socket, where BeginFastPath answers what it takes, against the same request
 * through fastify's route (inject never meets the fast path): the status, Retry-After and body must be the same,
 * and what the fast path does not take must reach fastify.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { CallerRole, authorizationHeader, deriveClientKey, deriveServiceKey, shardForIdempotencyKey } from '@txmesh/protocol';
import { buildCoordinator } from './app.ts';
import { beginFastPathChannel } from './begin-fast-path.ts';
import { MemoryDecisionLog } from './memory-decision-log.ts';
import { FakeTransport } from './testing/fake-transport.ts';

const SECRET = 'c'.repeat(64);
const CLIENT = authorizationHeader(CallerRole.CLIENT, 'shop', deriveClientKey(SECRET, 'shop'));
const SERVICE = authorizationHeader(CallerRole.SERVICE, 'inventory', deriveServiceKey(SECRET, 'inventory'));

async function setup(t: TestContext) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-fast-begin-'));
  const coordinator = await buildCoordinator({ shard: 0, shards: 2, dataDir, secrets: [SECRET], logLevel: 'silent' }, { transport: new FakeTransport(), log: new MemoryDecisionLog() });
  t.after(async () => {
    await coordinator.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  const register = await coordinator.app.inject({ method: 'POST', url: '/v1/services', headers: { authorization: SERVICE }, payload: { service: 'inventory', sidecarUrl: 'http://127.0.0.1:9001/' } });
  assert.equal(register.statusCode, 200);
  coordinator.recover();
  const url = await coordinator.app.listen({ host: '127.0.0.1', port: 0 });
  let taken = 0;
  const onTaken = (): void => void (taken += 1);
  subscribe(beginFastPathChannel.name, onTaken);
  t.after(() => unsubscribe(beginFastPathChannel.name, onTaken));
  return { ...coordinator, url, taken: () => taken };
}

interface Answer {
  status: number;
  retryAfter: string | undefined;
  contentType: string | undefined;
  body: unknown;
}

/** One request on a connection of its own (fetch may send a request again on a second connection). */
function post(url: string, headers: Record<string, string>, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/v1/transactions`, { method: 'POST', agent: false, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        const retryAfter = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, retryAfter, contentType: res.headers['content-type'], body: comparable(JSON.parse(text)) });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Ids and timings differ between two runs of one request; everything else must not. */
function comparable(body: unknown): unknown {
  return JSON.parse(JSON.stringify(body), (key, value: unknown) => (key === 'txId' ? 'TXID' : key === 'durationMs' ? 0 : value));
}

const participants = [{ service: 'inventory', operations: [{ op: 'reserve', args: { sku: 'a' } }] }];
/** An idempotency key this shard (0 of 2) does not own. */
const foreignKey = Array.from({ length: 100 }, (_, i) => `k-${i}`).find((k) => shardForIdempotencyKey(k, 2) === 1);

interface Case {
  name: string;
  body: string;
  headers?: Record<string, string>;
  /** Whether the fast path answers it (else fastify does). */
  fast: boolean;
}

const cases: Case[] = [
  { name: 'a commit', body: JSON.stringify({ participants }), fast: true },
  { name: 'a keyed commit, charset named', body: JSON.stringify({ participants, idempotencyKey: 'order-7' }), headers: { 'content-type': 'application/json; charset=utf-8' }, fast: true },
  { name: 'bad JSON', body: '{"participants": [', fast: true },
  { name: 'a __proto__ key', body: `{"__proto__": {"x": 1}, "participants": ${JSON.stringify(participants)}}`, fast: true },
  { name: 'an escaped __proto__ key', body: `{"\\u005f_proto__": {"x": 1}, "participants": ${JSON.stringify(participants)}}`, fast: true },
  { name: 'a constructor.prototype key', body: `{"constructor": {"prototype": {"x": 1}}, "participants": ${JSON.stringify(participants)}}`, fast: true },
  { name: 'no participants', body: JSON.stringify({ participants: [] }), fast: true },
  { name: 'a body that is not an object', body: '[1,2]', fast: true },
  { name: 'an unknown service', body: JSON.stringify({ participants: [...participants, { service: 'ghost', operations: [{ op: 'x' }] }] }), fast: true },
  { name: "another shard's key", body: JSON.stringify({ participants, idempotencyKey: foreignKey }), fast: true },
  { name: 'text/plain', body: 'commit please', headers: { 'content-type': 'text/plain' }, fast: false },
  { name: 'an empty body', body: '', fast: false },
  { name: 'no credential', body: JSON.stringify({ participants }), headers: { authorization: '' }, fast: false },
  { name: "a service's credential", body: JSON.stringify({ participants }), headers: { authorization: SERVICE }, fast: false },
];

describe('the begin route on node:http', () => {
  it('answers every request as the fastify route does, and leaves to fastify what it does not take', async (t) => {
    const { app, url, taken } = await setup(t);
    for (const c of cases) {
      const headers: Record<string, string> = { 'content-type': 'application/json', authorization: CLIENT, ...c.headers };
      if (headers.authorization === '') delete headers.authorization;
      const before = taken();
      const viaWire = await post(url, headers, c.body);
      assert.equal(taken() - before, c.fast ? 1 : 0, `${c.name}: ${c.fast ? 'taken by the fast path' : 'left to fastify'}`);
      const injected = await app.inject({ method: 'POST', url: '/v1/transactions', headers, payload: c.body });
      const viaFastify: Answer = { status: injected.statusCode, retryAfter: injected.headers['retry-after'] as string | undefined, contentType: injected.headers['content-type'] as string | undefined, body: comparable(injected.json()) };
      // A keyed commit is answered from the log the second time: the same outcome, the first run's id.
      assert.deepEqual(viaWire, viaFastify, c.name);
    }
  });
});
