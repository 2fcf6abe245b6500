/**
 * Helpers for this package's tests: a service on a temp database, and branch batches sent through the
 * participant's batch route exactly as a sidecar would send them (no coordinator involved).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import {
  BranchAction,
  PROTOCOL_VERSION,
  Paths,
  newTxId,
  type BranchBatchResponse,
  type BranchItem,
  type BranchItemResult,
  type JsonObject,
} from '@txmesh/protocol';
import { buildEcommerceService } from './app.ts';
import type { CatalogOptions } from './catalog.ts';
import type { EcommerceService, ServiceSummary } from './service-definition.ts';

export const SMALL_CATALOG: CatalogOptions = { skus: 5, stockPerSku: 5, accounts: 5, balancePerAccount: 100 };

export interface TestService {
  name: EcommerceService;
  app: FastifyInstance;
  dbPath: string;
  close(): Promise<void>;
}

const cleanups = new WeakMap<TestContext, (() => unknown)[]>();

/** Cleanups run last-registered first, so services close before their directory is removed. */
export function onCleanup(t: TestContext, fn: () => unknown): void {
  let stack = cleanups.get(t);
  if (stack === undefined) {
    const fresh: (() => unknown)[] = [];
    stack = fresh;
    cleanups.set(t, fresh);
    t.after(async () => {
      for (const cleanup of fresh.reverse()) await cleanup();
    });
  }
  stack.push(fn);
}

export function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'txmesh-ecommerce-'));
  onCleanup(t, () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function openService(
  t: TestContext,
  name: EcommerceService,
  opts: { dir?: string; catalog?: Partial<CatalogOptions> } = {},
): Promise<TestService> {
  const dir = opts.dir ?? tempDir(t);
  const dbPath = path.join(dir, `${name}.db`);
  const service = await buildEcommerceService(name, { dbPath, catalog: opts.catalog ?? SMALL_CATALOG, lockWaitMs: 100 });
  onCleanup(t, () => service.close());
  return { name, app: service.app, dbPath, close: () => service.close() };
}

export function txId(): string {
  return newTxId(0);
}

export async function sendBatch(service: TestService, items: BranchItem[]): Promise<BranchItemResult[]> {
  const res = await service.app.inject({
    method: 'POST',
    url: Paths.PARTICIPANT_BATCH,
    payload: { protocolVersion: PROTOCOL_VERSION, items },
  });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json() as BranchBatchResponse;
  assert.equal(body.results.length, items.length);
  return body.results;
}

async function one(service: TestService, item: BranchItem): Promise<BranchItemResult> {
  const [result] = await sendBatch(service, [item]);
  assert.ok(result);
  return result;
}

export function prepare(service: TestService, tx: string, operations: { op: string; args: JsonObject }[]): Promise<BranchItemResult> {
  // With a deadline, as the coordinator sends it: participants refuse prepares without one.
  return one(service, { action: BranchAction.PREPARE, txId: tx, service: service.name, operations, deadline: Date.now() + 5_000 });
}

export function commit(service: TestService, tx: string): Promise<BranchItemResult> {
  return one(service, { action: BranchAction.COMMIT, txId: tx, service: service.name });
}

export function rollback(service: TestService, tx: string): Promise<BranchItemResult> {
  return one(service, { action: BranchAction.ROLLBACK, txId: tx, service: service.name });
}

export async function summary(service: TestService): Promise<ServiceSummary> {
  const res = await service.app.inject({ method: 'GET', url: '/admin/summary' });
  assert.equal(res.statusCode, 200, res.body);
  return res.json() as ServiceSummary;
}

export async function getJson(service: TestService, url: string): Promise<{ status: number; body: any }> {
  const res = await service.app.inject({ method: 'GET', url });
  return { status: res.statusCode, body: res.json() };
}

/** A second connection to the service's database, to look at (or tamper with) its rows directly. */
export function peek(t: TestContext, service: TestService): Database.Database {
  const db = new Database(service.dbPath);
  db.pragma('busy_timeout = 2000');
  onCleanup(t, () => db.close());
  return db;
}
