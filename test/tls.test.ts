/**
 * TLS on the listeners, end to end as a user runs them: a shard and a sidecar started with --tls-cert and
 * --tls-key (and credentials) serve HTTPS only, find each other over HTTPS (registration, batches) when the
 * callers trust the certificate's CA (NODE_EXTRA_CA_CERTS), and a client commits a transaction through them.
 * The certificate (test/fixtures/tls, for 127.0.0.1 and localhost, self-signed, valid to 2126) is a test fixture.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CallerRole, authorizationHeader, deriveClientKey, deriveServiceKey } from '@txmesh/protocol';
import { spawnTxmesh, waitReady } from './helpers.ts';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/tls/', import.meta.url));
const CERT = join(FIXTURE, 'loopback.crt');
const KEY = join(FIXTURE, 'loopback.key');

/** A GET over plain HTTP to an HTTPS port: the server must not answer in clear. */
function plainGet(url: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get(url.replace(/^https:/, 'http:'), (res) => resolve(`answered ${res.statusCode}`));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.setTimeout(5_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
  });
}

test('a shard and a sidecar with --tls-cert/--tls-key serve HTTPS only and run a transaction over it', { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = 'ab'.repeat(32);
  const secretFile = join(dir, 'cluster.secret');
  const keyFile = join(dir, 'inventory.key');
  writeFileSync(secretFile, `${secret}\n`);
  writeFileSync(keyFile, `${deriveServiceKey(secret, 'inventory')}\n`);
  const env = { NODE_EXTRA_CA_CERTS: CERT };
  const tls = ['--tls-cert', CERT, '--tls-key', KEY];

  const coordinator = await waitReady(spawnTxmesh(t, ['coordinator', '--data', join(dir, 'coordinator'), '--port', '0', '--secret-file', secretFile, ...tls, '--log-level', 'error'], { env }));
  const service = await waitReady(spawnTxmesh(t, ['service', 'inventory', '--db', join(dir, 'inventory.db'), '--port', '0', '--key-file', keyFile, '--log-level', 'error'], { env }));
  const sidecar = await waitReady(
    spawnTxmesh(t, ['sidecar', '--service', 'inventory', '--service-url', service, '--coordinator', coordinator, '--data', join(dir, 'sidecar'), '--port', '0', '--key-file', keyFile, ...tls, '--log-level', 'error'], { env }),
  );
  assert.match(coordinator, /^https:\/\/127\.0\.0\.1:\d+$/);
  assert.match(sidecar, /^https:\/\/127\.0\.0\.1:\d+$/);
  for (const url of [coordinator, sidecar]) assert.doesNotMatch(await plainGet(`${url}/v1/health`), /^answered/, `${url} answers nothing in clear`);

  // The client trusts the CA and proves itself: the begin goes over HTTPS to the shard, the prepare and commit
  // over HTTPS to the sidecar, which registered with the shard over HTTPS (the sidecar was ready only once it had).
  const body = JSON.stringify({ participants: [{ service: 'inventory', operations: [{ op: 'reserve', args: { sku: 'sku-1', qty: 1 } }] }] });
  const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = https.request(`${coordinator}/v1/transactions`, {
      method: 'POST',
      ca: readFileSync(CERT),
      headers: { 'content-type': 'application/json', authorization: authorizationHeader(CallerRole.CLIENT, 'tls-test', deriveClientKey(secret, 'tls-test')) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
  assert.equal(answer.status, 200, answer.text);
  assert.equal((JSON.parse(answer.text) as { outcome: string }).outcome, 'committed', answer.text);
  // A caller that does not trust the certificate is refused by TLS itself.
  await assert.rejects(fetch(`${coordinator}/v1/health`), 'fetch without the CA fails the handshake');
});
