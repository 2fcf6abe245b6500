/**
 * README's PostgreSQL box office, both modes, as plain JavaScript processes on a throw-away server: a branch
 * books A1, a second branch wanting A2 and A1 votes no (SEAT_TAKEN) and leaves nothing; the README shows
 * these very files.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { BranchAction, PROTOCOL_VERSION, Paths, newTxId, type BranchItem, type BranchItemResult } from '@txmesh/protocol';
import { REPO_ROOT } from './npm-consumer.ts';
import { usePgServer } from './pg-server.ts';

const pgServer = usePgServer();
const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'pg-box-office');

async function batch(url: string, items: BranchItem[]): Promise<BranchItemResult[]> {
  const res = await fetch(`${url}${Paths.PARTICIPANT_BATCH}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items }),
  });
  assert.equal(res.status, 200);
  return ((await res.json()) as { results: BranchItemResult[] }).results;
}

for (const mode of ['native', 'tentative'] as const) {
  test(`README's box office on PostgreSQL (${mode}): all seats of a branch or none, nothing left prepared`, async (t) => {
    const databaseUrl = await pgServer.freshDatabase();
    const child = spawn(process.execPath, [join(FIXTURES, `box-office-${mode}.mjs`)], { env: { ...process.env, DATABASE_URL: databaseUrl, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    t.after(async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const found = /listening on (\S+)/.exec(out);
        if (found) resolve(found[1]!);
      });
      child.once('exit', (code) => reject(new Error(`box-office exited with ${code}: ${stderr}`)));
    });
    const book = (txId: string, holder: string, seats: string[]): BranchItem => ({
      action: BranchAction.PREPARE,
      txId,
      service: 'box-office',
      operations: seats.map((seat) => ({ op: 'book', args: { seat, holder } })),
      // As the coordinator sends it: a prepare without a deadline is refused.
      deadline: Date.now() + 5_000,
    });
    const [alice, bob] = [newTxId(0), newTxId(0)];
    assert.deepEqual((await batch(url, [book(alice, 'alice', ['A1'])])).map((r) => r.status), ['ok']);
    assert.equal((await batch(url, [{ action: BranchAction.COMMIT, txId: alice, service: 'box-office' }]))[0]!.status, 'ok');
    const refused = (await batch(url, [book(bob, 'bob', ['A2', 'A1'])]))[0]!;
    assert.deepEqual([refused.status, refused.reason], ['no', 'SEAT_TAKEN']);
    assert.equal((await batch(url, [{ action: BranchAction.ROLLBACK, txId: bob, service: 'box-office' }]))[0]!.status, 'ok');

    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const seats = (await client.query<{ seat: string; holder: string }>('SELECT seat, holder FROM seats ORDER BY seat')).rows;
      assert.deepEqual(seats.map((s) => [s.seat, s.holder]), [['A1', 'alice']], 'A2 is not booked either');
      assert.equal((await client.query('SELECT 1 FROM pg_prepared_xacts')).rowCount, 0);
    } finally {
      await client.end();
    }
  });
}

test("README's PostgreSQL section shows the box office files as the test runs them", () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  for (const mode of ['native', 'tentative']) {
    assert.ok(blocks.includes(readFileSync(join(FIXTURES, `box-office-${mode}.mjs`), 'utf8')), `README.md has no js block equal to box-office-${mode}.mjs`);
  }
});
