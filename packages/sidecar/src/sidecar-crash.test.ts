import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Decision, newTxId, PROTOCOL_VERSION } from '@txmesh/protocol';
import { SidecarSteps } from './steps.ts';
import { buildSidecar } from './sidecar.ts';
import { SqlitePreparedStore } from './sqlite-prepared-store.ts';
import { listenOn, readJson, startFakeCoordinator, startFakeService, tempDir } from './test-fakes.ts';

const sidecarModule = fileURLToPath(new URL('./sidecar.js', import.meta.url));
/** Arms the crash points named in TXMESH_CRASH_AT (see @txmesh/lab's crash-on-step). */
const CRASH_PRELOAD = fileURLToPath(import.meta.resolve('@txmesh/lab/crash-on-step'));


describe('sidecar crash after recording a prepared branch', () => {
  it('has the record on disk although the vote never left, and a restarted sidecar resolves it', async (t) => {
    const shard0 = await startFakeCoordinator(t, 0);
    const service = await startFakeService(t);
    const dataDir = tempDir(t);
    const script = `
      const { startSidecar } = await import(${JSON.stringify(sidecarModule)});
      const sidecar = await startSidecar({ service: 'inventory', serviceUrl: process.env.SERVICE_URL, coordinatorUrls: [], dataDir: process.env.DATA_DIR, logLevel: 'silent' });
      process.stdout.write(sidecar.url + '\\n');`;
    const child = spawn(process.execPath, ['--import', CRASH_PRELOAD, '--input-type=module', '--eval', script], {
      env: { ...process.env, SERVICE_URL: service.url, DATA_DIR: dataDir, TXMESH_CRASH_AT: SidecarSteps.AFTER_PREPARED_RECORDED },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const exited = once(child, 'exit');
    let out = '';
    child.stdout.setEncoding('utf8');
    for await (const chunk of child.stdout) {
      out += chunk;
      if (out.includes('\n')) break;
    }
    const url = out.trim();
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);

    const tx = newTxId(0);
    const items = [{ action: 'prepare', txId: tx, service: 'inventory', operations: [{ op: 'reserve' }] }];
    await assert.rejects(
      fetch(`${url}/txmesh/v1/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items }) }),
      'no vote may leave: the process dies at the crash point',
    );
    const [code, signal] = await exited;
    assert.equal(signal, 'SIGKILL', `exit code ${String(code)}`);
    assert.equal(service.batches.length, 1);

    const store = SqlitePreparedStore.forService(dataDir, 'inventory');
    assert.deepEqual(store.list().map((r) => r.txId), [tx]);
    store.close();

    shard0.decisions.set(tx, Decision.COMMIT);
    const restarted = await buildSidecar({ service: 'inventory', serviceUrl: service.url, coordinatorUrls: [shard0.url], dataDir, logLevel: 'silent' });
    t.after(() => restarted.close());
    assert.equal(await restarted.resolveInDoubt(), 1);
    assert.deepEqual(service.batches.at(-1)!.items, [{ action: 'commit', txId: tx, service: 'inventory' }]);
    const health = await readJson(await fetch(`${await listenOn(restarted.server)}/txmesh/v1/health`));
    assert.equal(health.prepared, 0);
  });
});
