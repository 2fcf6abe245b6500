/**
 * Test doubles on real sockets: a fake service implementing the participant routes and one ordinary
 * route, and a fake coordinator shard answering registrations and decisions. Both record what they got.
 */
import type { TestContext } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  ItemStatus,
  Paths,
  PROTOCOL_VERSION,
  TxmeshError,
  type BranchBatchRequest,
  type BranchItem,
  type BranchItemResult,
  type Decision,
  type RegisterServiceRequest,
} from '@txmesh/protocol';

export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-sidecar-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function listen(t: TestContext, app: FastifyInstance): Promise<string> {
  t.after(() => app.close());
  return app.listen({ host: '127.0.0.1', port: 0 });
}

/** Listens on a free loopback port (a sidecar from buildSidecar) and gives its URL; closing the sidecar closes it. */
export function listenOn(server: Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

export interface FakeService {
  url: string;
  batches: BranchBatchRequest[];
  /** Ordinary requests seen by the /echo route. */
  echoes: { method: string; url: string; headers: Record<string, unknown>; body: unknown }[];
  /** How the service answers one item; default: ok. */
  answer: (item: BranchItem) => BranchItemResult;
  /** What GET /prepared lists. */
  prepared: { txId: string; preparedAt: number }[];
  /** Awaited before a batch is answered: lets a test hold one batch while others pass. */
  before: (batch: BranchBatchRequest) => Promise<void> | void;
}

export async function startFakeService(t: TestContext, service = 'inventory'): Promise<FakeService> {
  const app = Fastify();
  const fake: FakeService = {
    url: '',
    batches: [],
    echoes: [],
    answer: (item) => ({ txId: item.txId, action: item.action, status: ItemStatus.OK }),
    prepared: [],
    before: () => undefined,
  };
  app.post(Paths.PARTICIPANT_BATCH, async (request) => {
    const batch = request.body as BranchBatchRequest;
    fake.batches.push(batch);
    await fake.before(batch);
    return { protocolVersion: PROTOCOL_VERSION, results: batch.items.map((item) => fake.answer(item)) };
  });
  app.get(Paths.PARTICIPANT_PREPARED, async () => ({ service, prepared: fake.prepared }));
  app.all('/echo/*', async (request) => {
    fake.echoes.push({ method: request.method, url: request.url, headers: { ...request.headers }, body: request.body });
    return { seen: request.url, tx: request.headers['x-txmesh-tx'] ?? null, body: request.body ?? null };
  });
  fake.url = await listen(t, app);
  return fake;
}

export interface FakeCoordinator {
  url: string;
  /** false: registrations are refused with 421 TXM_WRONG_SHARD (and still recorded). */
  accepting: boolean;
  registrations: RegisterServiceRequest[];
  decisions: Map<string, Decision>;
  decisionQueries: string[];
  /** How long each decision answer takes: a busy shard. */
  decisionDelayMs: number;
}

/** Unknown transactions answer "pending", so a test only decides what it names. */
export async function startFakeCoordinator(t: TestContext, shard = 0): Promise<FakeCoordinator> {
  const app = Fastify();
  const fake: FakeCoordinator = { url: '', accepting: true, registrations: [], decisions: new Map(), decisionQueries: [], decisionDelayMs: 0 };
  app.post(Paths.SERVICES, async (request, reply) => {
    fake.registrations.push(request.body as RegisterServiceRequest);
    if (!fake.accepting) return reply.code(421).send(new TxmeshError('TXM_WRONG_SHARD', `this is shard ${shard}`).toBody());
    return { shard, shards: 1, heartbeatMs: 1000 };
  });
  app.get<{ Params: { txId: string } }>(Paths.TRANSACTION_DECISION, async (request) => {
    fake.decisionQueries.push(request.params.txId);
    if (fake.decisionDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, fake.decisionDelayMs));
    return { txId: request.params.txId, decision: fake.decisions.get(request.params.txId) ?? 'pending' };
  });
  fake.url = await listen(t, app);
  return fake;
}

/** A URL on which nothing listens: a port the OS handed out and was freed again. */
export async function deadUrl(): Promise<string> {
  const app = Fastify();
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  await app.close();
  return url;
}

/** Polls until `check` is true, failing after `timeoutMs`. */
export async function waitFor(check: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A response body as JSON; tests then assert its shape field by field. */
export async function readJson(res: Response): Promise<any> {
  return res.json();
}
