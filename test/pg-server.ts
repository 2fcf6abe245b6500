/**
 * One throw-away PostgreSQL server per test file (initdb in a temp folder, pg_ctl on a free loopback
 * port, max_prepared_transactions set), stopped when the file's tests end, and a fresh database per test.
 */
import { after, before } from 'node:test';
import pg from 'pg';
import { startTempPostgres, type TempPostgres } from '@txmesh/lab';
import { ensureTestTool } from './tools.ts';

export interface PgServerHandle {
  /** The running server; only inside tests. */
  server(): TempPostgres;
  /** A new empty database on it (gone with the server); returns its connection string. */
  freshDatabase(): Promise<string>;
}

let databases = 0;

export function usePgServer(options: { maxPreparedTransactions?: number } = {}): PgServerHandle {
  let server: TempPostgres | undefined;
  before(async () => {
    server = await startTempPostgres({ binDir: ensureTestTool('postgresql'), ...options });
  });
  after(async () => {
    await server?.stop();
  });
  const running = (): TempPostgres => {
    if (!server) throw new Error('the PostgreSQL test server is not running');
    return server;
  };
  return {
    server: running,
    async freshDatabase() {
      databases += 1;
      const name = `txm_test_${process.pid}_${databases}`;
      const admin = new pg.Client({ connectionString: running().connectionString });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      return running().connectionString.replace(/\/postgres$/, `/${name}`);
    },
  };
}
