/**
 * A seeded fuzzer against a running cluster (credentials on): mutated requests to every endpoint class of
 * the coordinator, a sidecar, a service and the sidecar's proxy, with no, wrong, misused and valid
 * credentials. Checked: no 5xx, no member dies, every refusal has the catalogue's shape, and the requests
 * without a valid credential change nothing in any service database. Seed: TXMESH_FUZZ_SEED (printed).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import { seededRandom } from '@txmesh/example-ecommerce';
import { CallerRole, ErrorCodes, PROTOCOL_VERSION, authorizationHeader, isErrorCode, newTxId } from '@txmesh/protocol';
import { processMemoryMb, type Member } from '@txmesh/lab';
import { branchRowCount, goodOrder, startTestCluster, summaries } from './helpers.ts';

const SEED = Number(process.env.TXMESH_FUZZ_SEED ?? 20_261_127);
const UNAUTHENTICATED_REQUESTS = 6_000;
const AUTHENTICATED_REQUESTS = 4_500;
const PARALLEL = 24;
/** Refused requests leave nothing behind: a member's RSS over the second half of them may drift this much. */
const MAX_DRIFT_MB = 16;
/** And no member may ever reach this multiple of its resident memory before the fuzz (the issue saw a sidecar at 2.8x). */
const MAX_PEAK_RATIO = 2;

type Rng = () => number;
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;

const JUNK: unknown[] = [null, true, -1, 0, 1e308, 'x', '', '1e999', 'hasOwnProperty', '__proto__', [], {}, [1, 2], { a: 1 }, 'é\u0000\ud800', 'A'.repeat(5000), -0.5, 2 ** 53 + 1];

function deep(levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}

/** One structural mutation of a JSON value (a copy). */
function mutate(rng: Rng, value: unknown, budget = 3): unknown {
  if (budget === 0 || value === null || typeof value !== 'object') {
    const roll = rng();
    if (roll < 0.5) return pick(rng, JUNK);
    if (roll < 0.6) return deep(Math.floor(rng() * 3000));
    return value;
  }
  const copy: Record<string, unknown> | unknown[] = Array.isArray(value) ? [...value] : { ...(value as Record<string, unknown>) };
  const keys = Object.keys(copy);
  const roll = rng();
  if (keys.length > 0 && roll < 0.25) {
    const key = pick(rng, keys);
    if (Array.isArray(copy)) copy.splice(Number(key), 1);
    else delete copy[key];
  } else if (keys.length > 0 && roll < 0.75) {
    const key = pick(rng, keys);
    (copy as Record<string, unknown>)[key] = mutate(rng, (copy as Record<string, unknown>)[key], budget - 1);
  } else if (Array.isArray(copy) && copy.length > 0 && roll < 0.85) {
    const times = Math.floor(rng() * 300);
    for (let i = 0; i < times; i++) copy.push(copy[0]);
  } else {
    (copy as Record<string, unknown>)[pick(rng, ['__proto__', 'constructor', 'extra', 'items', 'service', 'deadline'])] = pick(rng, JUNK);
  }
  return copy;
}

/** Resident memory of each member now, and its peak so far (VmHWM), from /proc. */
function memoryOf(members: readonly Member[]): Map<string, { rssMb: number; peakRssMb: number }> {
  return new Map(members.map((member) => {
    const memory = processMemoryMb(member.pid);
    assert.ok(memory, `${member.name}: no /proc entry`);
    return [member.name, memory];
  }));
}

interface Shot {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  headers: Record<string, string>;
  body?: string;
}

test('fuzz: every component answers mutated requests with no 5xx, catalogue refusals, and no change without a credential', async (t) => {
  process.stdout.write(`# fuzz seed ${SEED}\n`);
  const rng = seededRandom(SEED);
  const cluster = await startTestCluster(t);
  const credentials = cluster.credentials!;
  const coordinator = cluster.coordinators[0]!.url;
  const sidecar = cluster.sidecars.get('inventory')!.url;
  const service = cluster.services.get('inventory')!.url;

  const prepareItem = () => ({ action: 'prepare', txId: newTxId(rng() < 0.8 ? 0 : 7), service: 'inventory', deadline: Date.now() + 2_000, operations: [{ op: 'reserve', args: { sku: 'sku-2', qty: 1 } }] });
  const batchBody = () => ({ protocolVersion: PROTOCOL_VERSION, items: [prepareItem(), { action: pick(rng, ['commit', 'rollback']), txId: newTxId(0), service: 'inventory' }] });
  const bases: { name: string; method: Shot['method']; url: () => string; body?: () => unknown; owner: 'coordinator' | 'sidecar' | 'service' | 'proxy' }[] = [
    { name: 'begin', method: 'POST', url: () => `${coordinator}/v1/transactions`, body: () => goodOrder(`fuzz-${Math.floor(rng() * 1e9)}`, 3000), owner: 'coordinator' },
    { name: 'register', method: 'POST', url: () => `${coordinator}/v1/services`, body: () => ({ service: pick(rng, ['inventory', 'payment', '1e999', 'hasOwnProperty']), sidecarUrl: 'http://127.0.0.1:9', report: { at: Date.now() + 1e9, cpuPercent: 5 } }), owner: 'coordinator' },
    { name: 'status', method: 'GET', url: () => `${coordinator}/v1/transactions/${encodeURIComponent(pick(rng, [newTxId(0), newTxId(0, 1), 'nope', '0-zzz-0123456789abcdef']))}`, owner: 'coordinator' },
    { name: 'decision', method: 'GET', url: () => `${coordinator}/v1/transactions/${encodeURIComponent(newTxId(0))}/decision`, owner: 'coordinator' },
    { name: 'services', method: 'GET', url: () => `${coordinator}/v1/services`, owner: 'coordinator' },
    { name: 'in-doubt', method: 'GET', url: () => `${coordinator}/v1/in-doubt?olderThanMs=${pick(rng, ['5', '-1', 'x', '99999999999999'])}`, owner: 'coordinator' },
    { name: 'coordinator health', method: 'GET', url: () => `${coordinator}/v1/health`, owner: 'coordinator' },
    { name: 'coordinator stats', method: 'GET', url: () => `${coordinator}/v1/stats`, owner: 'coordinator' },
    { name: 'sidecar batch', method: 'POST', url: () => `${sidecar}/txmesh/v1/batch`, body: batchBody, owner: 'sidecar' },
    { name: 'sidecar health', method: 'GET', url: () => `${sidecar}/txmesh/v1/health`, owner: 'sidecar' },
    { name: 'sidecar stats', method: 'GET', url: () => `${sidecar}/txmesh/v1/stats`, owner: 'sidecar' },
    { name: 'proxied participant', method: 'POST', url: () => `${sidecar}${pick(rng, ['/txmesh/participant/v1/batch', '/%74xmesh/participant/v1/batch', '//txmesh//participant/v1/prepared', '/a/../txmesh/participant/v1/batch'])}`, body: batchBody, owner: 'proxy' },
    { name: 'participant batch', method: 'POST', url: () => `${service}/txmesh/participant/v1/batch`, body: batchBody, owner: 'service' },
    { name: 'participant prepared', method: 'GET', url: () => `${service}/txmesh/participant/v1/prepared`, owner: 'service' },
    { name: 'participant usage', method: 'GET', url: () => `${service}/txmesh/participant/v1/usage`, owner: 'service' },
  ];
  const WRONG = 'cd'.repeat(32);
  const unauthenticated = [
    () => undefined,
    () => authorizationHeader(CallerRole.CLIENT, 'lab', WRONG),
    () => authorizationHeader(CallerRole.SERVICE, 'inventory', WRONG),
    () => authorizationHeader(CallerRole.COORDINATOR, 'inventory', WRONG),
    () => authorizationHeader(CallerRole.SIDECAR, 'inventory', WRONG),
    () => credentials.sidecarHeaders('payment').authorization, // valid, but another service's and another door's
    () => pick(rng, ['Bearer', 'Bearer ::', `Bearer client:lab:${'0'.repeat(64)}:x`, 'Basic dXNlcjpwYXNz', 'Bearer '.repeat(40), `Bearer sidecar:inventory:${'g'.repeat(64)}`]),
  ];
  const validFor = (owner: string): string | undefined =>
    owner === 'coordinator' ? pick(rng, [cluster.clientHeaders.authorization, authorizationHeader(CallerRole.SERVICE, 'inventory', credentials.serviceKeyFileContent('inventory'))])
      : owner === 'sidecar' ? credentials.coordinatorHeaders('inventory').authorization
        : owner === 'service' || owner === 'proxy' ? credentials.sidecarHeaders('inventory').authorization
          : undefined;

  function shot(authorized: boolean): Shot {
    const base = authorized ? pick(rng, bases.filter((b) => b.owner === 'coordinator')) : pick(rng, bases);
    let url = base.url();
    if (rng() < 0.05) url += `?pad=${'u'.repeat(Math.floor(rng() * 24_000))}`;
    const headers: Record<string, string> = {};
    const auth = authorized ? validFor(base.owner) : pick(rng, unauthenticated)();
    if (auth !== undefined) headers.authorization = auth;
    let method = base.method;
    if (rng() < 0.05) method = pick(rng, ['GET', 'POST', 'PUT', 'DELETE'] as const);
    if (method === 'GET' || method === 'DELETE') return { method, url, headers };
    headers['content-type'] = rng() < 0.9 ? 'application/json' : pick(rng, ['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1']);
    let text = JSON.stringify(rng() < (authorized ? 0.05 : 0.15) ? (base.body?.() ?? {}) : mutate(rng, base.body?.() ?? {})) ?? "null";
    const roll = rng();
    if (roll < 0.05) text = text.slice(0, Math.floor(rng() * text.length));
    else if (roll < 0.08) text = text.replace(/[:,]/, pick(rng, ['', '::', '}']));
    else if (roll < 0.09) text = JSON.stringify({ pad: 'p'.repeat(1_100_000 + Math.floor(rng() * 200_000)) });
    return { method, url, headers, body: text };
  }

  const dispatcher = new Agent({ connections: PARALLEL, headersTimeout: 30_000, bodyTimeout: 30_000 });
  t.after(() => dispatcher.close());
  const failures: string[] = [];
  const tally = { sent: 0, ok: 0, refused: 0, byStatus: new Map<number, number>() };
  async function fire(s: Shot): Promise<void> {
    let status: number;
    let text: string;
    try {
      const res = await request(s.url, { method: s.method, headers: s.headers, body: s.body ?? null, dispatcher });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      failures.push(`${s.method} ${s.url.slice(0, 120)}: no answer (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      return;
    }
    tally.sent += 1;
    tally.byStatus.set(status, (tally.byStatus.get(status) ?? 0) + 1);
    if (status >= 500) failures.push(`${s.method} ${s.url.slice(0, 120)} -> ${status} ${text.slice(0, 200)}`);
    if (status >= 400) {
      tally.refused += 1;
      let body: { error?: { code?: unknown; message?: unknown } } | undefined;
      try {
        body = JSON.parse(text) as typeof body;
      } catch {
        body = undefined;
      }
      const code = body?.error?.code;
      if (!isErrorCode(code) || ErrorCodes[code].status !== status || typeof body?.error?.message !== 'string') {
        failures.push(`${s.method} ${s.url.slice(0, 120)} -> ${status} not in the catalogue's shape: ${text.slice(0, 200)}`);
      }
    } else tally.ok += 1;
  }
  async function run(count: number, authorized: boolean): Promise<void> {
    const shots = Array.from({ length: count }, () => shot(authorized));
    let next = 0;
    await Promise.all(Array.from({ length: PARALLEL }, async () => {
      while (next < shots.length) await fire(shots[next++]!);
    }));
  }

  const members = [...cluster.coordinators, ...cluster.services.values(), ...cluster.sidecars.values()];
  const rowsBefore = branchRowCount(cluster.dataDir);
  const summariesBefore = await summaries(cluster);
  const memoryBefore = memoryOf(members);
  const startedAt = Date.now();
  await run(UNAUTHENTICATED_REQUESTS / 2, false);
  const memoryHalfway = memoryOf(members);
  await run(UNAUTHENTICATED_REQUESTS / 2, false);
  const memoryRefused = memoryOf(members);
  assert.deepEqual(failures.slice(0, 20), [], `${failures.length} failures without credentials`);
  assert.equal(branchRowCount(cluster.dataDir), rowsBefore, 'no branch row written by a request without a valid credential');
  assert.deepEqual(await summaries(cluster), summariesBefore, 'no business change without a valid credential');

  await run(AUTHENTICATED_REQUESTS, true);
  const seconds = (Date.now() - startedAt) / 1000;
  process.stdout.write(`# fuzz: ${tally.sent} answers in ${seconds.toFixed(1)} s (${tally.ok} 2xx, ${tally.refused} refusals; ${[...tally.byStatus].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}:${n}`).join(' ')})\n`);
  assert.deepEqual(failures.slice(0, 20), [], `${failures.length} failures with credentials`);
  assert.ok(tally.sent >= 10_000, `${tally.sent} requests answered`);
  for (const member of members) assert.ok(member.running, `${member.name} is still running`);
  // Memory: bounded by the connections and the body limits, not by how many requests were refused.
  const memoryAfter = memoryOf(members);
  process.stdout.write(`# fuzz RSS MB (before, halfway, after refusals, peak): ${members.map((m) => `${m.name} ${memoryBefore.get(m.name)!.rssMb}, ${memoryHalfway.get(m.name)!.rssMb}, ${memoryRefused.get(m.name)!.rssMb}, ${memoryAfter.get(m.name)!.peakRssMb}`).join('; ')}\n`);
  for (const member of members) {
    const before = memoryBefore.get(member.name)!.rssMb;
    assert.ok(memoryAfter.get(member.name)!.peakRssMb <= before * MAX_PEAK_RATIO, `${member.name}: peak RSS ${memoryAfter.get(member.name)!.peakRssMb} MB, ${before} MB before the fuzz`);
    const drift = memoryRefused.get(member.name)!.rssMb - memoryHalfway.get(member.name)!.rssMb;
    assert.ok(drift <= MAX_DRIFT_MB, `${member.name}: RSS grew ${drift.toFixed(1)} MB over the second half of the refused requests`);
  }
  const after = await summaries(cluster);
  for (const [name, summary] of after) assert.ok(summary.ok, `${name}: ${summary.problems.join('; ')}`);
});

