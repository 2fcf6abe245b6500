/**
 * The "no distribution at all" bound of `txmesh bench --loads`: the whole order (stock, account, order,
 * shipment) as one local SQLite transaction in a single process, WAL and synchronous=FULL like every txmesh
 * store. Measured once a commit per order and once 64 orders per commit (what group commit can reach), plus
 * the latency of one small FULL commit, which is the unit of the physical path.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { round } from './bench-math.ts';
import { percentile } from './demo.ts';

export interface LocalBaseline {
  /** p50 of one single-row transaction with synchronous=FULL (WAL): one forced write. */
  sqliteFullCommitP50Ms: number;
  /** The whole order as one local transaction, one commit per order. */
  perCommit: { ordersPerSec: number; p50Ms: number };
  /** 64 orders per local transaction. */
  batched64: { ordersPerSec: number };
}

const ACCOUNTS = 1000;
const SKUS = 1000;

export function measureLocalBaseline(durationMs: number): LocalBaseline {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-local-'));
  const db = new Database(join(dir, 'order.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(`
      CREATE TABLE probe (n INTEGER PRIMARY KEY, at INTEGER NOT NULL);
      CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL);
      CREATE TABLE accounts (account TEXT PRIMARY KEY, balance INTEGER NOT NULL);
      CREATE TABLE orders (order_id TEXT PRIMARY KEY, sku TEXT NOT NULL, account TEXT NOT NULL, amount INTEGER NOT NULL);
      CREATE TABLE shipments (order_id TEXT PRIMARY KEY, address TEXT NOT NULL);
    `);
    const seed = db.transaction(() => {
      const sku = db.prepare('INSERT INTO stock VALUES (?, 1000000)');
      const account = db.prepare('INSERT INTO accounts VALUES (?, 1000000000)');
      for (let i = 1; i <= SKUS; i++) sku.run(`sku-${i}`);
      for (let i = 1; i <= ACCOUNTS; i++) account.run(`acct-${i}`);
    });
    seed();

    const probe = db.prepare('INSERT INTO probe (at) VALUES (?)');
    const commitMs: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      probe.run(Date.now());
      commitMs.push(performance.now() - t0);
    }

    const reserve = db.prepare('UPDATE stock SET qty = qty - 1 WHERE sku = ? AND qty >= 1');
    const charge = db.prepare('UPDATE accounts SET balance = balance - ? WHERE account = ? AND balance >= ?');
    const create = db.prepare('INSERT INTO orders VALUES (?, ?, ?, ?)');
    const ship = db.prepare('INSERT INTO shipments VALUES (?, ?)');
    let n = 0;
    const placeOne = (): void => {
      n += 1;
      const sku = `sku-${1 + (n % SKUS)}`;
      const account = `acct-${1 + ((n * 7) % ACCOUNTS)}`;
      const amount = 1 + (n % 50);
      if (reserve.run(sku).changes !== 1) throw new Error('out of stock');
      if (charge.run(amount, account, amount).changes !== 1) throw new Error('insufficient funds');
      create.run(`order-${n}`, sku, account, amount);
      ship.run(`order-${n}`, `${1 + (n % 500)} Bench Road`);
    };
    const one = db.transaction(placeOne);
    const many = db.transaction((count: number) => {
      for (let i = 0; i < count; i++) placeOne();
    });

    const orderMs: number[] = [];
    let started = performance.now();
    while (performance.now() - started < durationMs) {
      const t0 = performance.now();
      one();
      orderMs.push(performance.now() - t0);
    }
    const perCommitSec = (performance.now() - started) / 1000;

    let batchedOrders = 0;
    started = performance.now();
    while (performance.now() - started < durationMs) {
      many(64);
      batchedOrders += 64;
    }
    const batchedSec = (performance.now() - started) / 1000;

    commitMs.sort((a, b) => a - b);
    orderMs.sort((a, b) => a - b);
    return {
      sqliteFullCommitP50Ms: round(percentile(commitMs, 50), 3),
      perCommit: { ordersPerSec: round(orderMs.length / perCommitSec), p50Ms: round(percentile(orderMs, 50), 3) },
      batched64: { ordersPerSec: round(batchedOrders / batchedSec) },
    };
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
