/**
 * A client that sends part of a request and then stalls (a slow-loris) is cut off by the server's own
 * timeouts, end to end on the real processes a user runs: the coordinator, a sidecar and an example service
 * each answer 408 TXM_REQUEST_TIMEOUT in the catalogue's shape once REQUEST_TIMEOUT_MS has passed, then close
 * the connection, whether the headers or the body never finished, and keep serving others meanwhile.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REQUEST_TIMEOUT_MS } from '@txmesh/protocol';
import { spawnTxmesh, waitReady } from './helpers.ts';

/** How often Node looks for requests past their timeout (SERVER_TIMEOUTS.connectionsCheckingInterval), plus slack. */
const CHECK_SLACK_MS = 5_000 + 3_000;

interface Stalled {
  /** Everything the server wrote before it closed the connection. */
  answer: string;
  /** From the first byte sent to the close. */
  ms: number;
}

/** Sends `partial` and nothing more; resolves when the server closes the connection. */
function stallOn(url: string, partial: string): Promise<Stalled> {
  const { hostname, port } = new URL(url);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(partial));
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('close', () => resolve({ answer, ms: Date.now() - started }));
    socket.on('error', reject);
  });
}

const partialHeaders = (path: string): string => `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n`;
const partialBody = (path: string): string => `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"items":`;

test('a slow client gets 408 TXM_REQUEST_TIMEOUT from the coordinator, a sidecar and a service, then the connection closes', { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-slow-client-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const coordinator = await waitReady(spawnTxmesh(t, ['coordinator', '--data', join(dir, 'coordinator'), '--port', '0', '--insecure', '--log-level', 'error']));
  const service = await waitReady(spawnTxmesh(t, ['service', 'inventory', '--db', join(dir, 'inventory.db'), '--port', '0', '--log-level', 'error']));
  const sidecar = await waitReady(
    spawnTxmesh(t, ['sidecar', '--service', 'inventory', '--service-url', service, '--coordinator', coordinator, '--data', join(dir, 'sidecar'), '--port', '0', '--insecure', '--log-level', 'error']),
  );
  const targets = [
    { name: 'coordinator', url: coordinator, path: '/v1/transactions', health: '/v1/health' },
    { name: 'sidecar', url: sidecar, path: '/txmesh/v1/batch', health: '/txmesh/v1/health' },
    { name: 'service', url: service, path: '/txmesh/participant/v1/batch', health: '/health' },
  ];
  const stalls = targets.flatMap((target) => [
    { what: `${target.name}, headers unfinished`, done: stallOn(target.url, partialHeaders(target.path)) },
    { what: `${target.name}, body unfinished`, done: stallOn(target.url, partialBody(target.path)) },
  ]);
  // While the slow clients hold their connections, everyone else is served as usual.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  for (const target of targets) assert.equal((await fetch(`${target.url}${target.health}`)).status, 200, `${target.name} serves others meanwhile`);

  for (const stall of stalls) {
    const { answer, ms } = await stall.done;
    assert.match(answer, /^HTTP\/1\.1 408 /, `${stall.what}: ${JSON.stringify(answer.slice(0, 200))}`);
    assert.match(answer, /\r\nConnection: close\r\n/i, `${stall.what}: the server says it closes`);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'TXM_REQUEST_TIMEOUT', stall.what);
    assert.ok(body.error.message.length > 20, `${stall.what}: a sentence to act on`);
    assert.ok(ms >= REQUEST_TIMEOUT_MS - 1_000, `${stall.what}: not cut before the timeout (${ms} ms)`);
    assert.ok(ms <= REQUEST_TIMEOUT_MS + CHECK_SLACK_MS, `${stall.what}: cut within the timeout and one check interval (${ms} ms)`);
  }
});
