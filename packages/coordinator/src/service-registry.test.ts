import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryDecisionLog, MemoryLogStore } from './memory-decision-log.ts';
import { Scheduler } from './scheduler.ts';
import { ServiceRegistry } from './service-registry.ts';

const LEASE = { leaseMs: 30_000, forgetAfterMs: 600_000 };

test('a registration is a lease: unseen past it a service takes no new transactions, its address still serves deliveries', () => {
  const registry = new ServiceRegistry(new MemoryDecisionLog(new MemoryLogStore()), LEASE, undefined, 0);
  const t0 = 1_000_000;
  registry.register({ service: 'inventory', sidecarUrl: 'http://10.0.0.7:7070' }, t0);
  assert.equal(registry.unavailable('inventory', t0 + LEASE.leaseMs), undefined, 'within the lease');
  assert.match(registry.unavailable('inventory', t0 + LEASE.leaseMs + 1_000) ?? '', /^inventory \(its registration expired: no heartbeat for 31 s\)$/);
  assert.equal(registry.sidecarUrl('inventory'), 'http://10.0.0.7:7070', 'decided outcomes still have somewhere to go');
  assert.equal(registry.unavailable('payment', t0), 'payment', 'never registered');
  registry.register({ service: 'inventory', sidecarUrl: 'http://10.0.0.7:7070' }, t0 + LEASE.leaseMs + 2_000);
  assert.equal(registry.unavailable('inventory', t0 + LEASE.leaseMs + 2_000), undefined, 'a heartbeat renews it');
});

test('a service unseen for forgetAfterMs leaves memory with its scheduler lane, and the stored table', async () => {
  const store = new MemoryLogStore();
  const scheduler = new Scheduler();
  const registry = new ServiceRegistry(new MemoryDecisionLog(store), LEASE, scheduler, 0);
  const t0 = 1_000_000;
  registry.register({ service: 'gone', sidecarUrl: 'http://10.0.0.8:7070', report: { at: t0, latencyP50Ms: 5 } }, t0);
  registry.register({ service: 'alive', sidecarUrl: 'http://10.0.0.9:7070', report: { at: t0, latencyP50Ms: 5 } }, t0);
  assert.equal(scheduler.lanes, 2);
  const later = t0 + LEASE.forgetAfterMs + 1;
  registry.register({ service: 'alive', sidecarUrl: 'http://10.0.0.9:7070', report: { at: later, latencyP50Ms: 5 } }, later);
  assert.deepEqual(registry.list().map((v) => v.service), ['alive']);
  assert.equal(registry.sidecarUrl('gone'), undefined);
  assert.equal(scheduler.lanes, 1, 'the scheduler lane went with it');
  // The table forgets it too (written unforced, after this turn): a restarted shard does not bring it back.
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual([...store.services.keys()], ['alive']);
  const restarted = new ServiceRegistry(new MemoryDecisionLog(store), LEASE, undefined, later);
  assert.equal(restarted.sidecarUrl('gone'), undefined);
  assert.equal(restarted.sidecarUrl('alive'), 'http://10.0.0.9:7070');
});

test('a restarted shard gives each stored service one forgetAfterMs to heartbeat, then drops its row', async () => {
  const store = new MemoryLogStore();
  const t0 = 1_000_000;
  const first = new ServiceRegistry(new MemoryDecisionLog(store), LEASE, undefined, t0);
  for (const service of ['inventory', '1e999', 'hasOwnProperty']) first.register({ service, sidecarUrl: `http://10.0.0.9:7070/${service}` }, t0);
  await new Promise((resolve) => setTimeout(resolve, 20));
  // Restarted much later: every stored address is read back, for recovery, with one lease to heartbeat.
  const restartedAt = t0 + 10 * LEASE.forgetAfterMs;
  const restarted = new ServiceRegistry(new MemoryDecisionLog(store), LEASE, undefined, restartedAt);
  assert.equal(restarted.unavailable('1e999', restartedAt + 1), undefined);
  // Only inventory heartbeats; past forgetAfterMs the others leave memory and the table.
  const later = restartedAt + LEASE.forgetAfterMs + 1;
  restarted.register({ service: 'inventory', sidecarUrl: 'http://10.0.0.9:7070/inventory' }, later);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual([...store.services.keys()], ['inventory']);
  assert.deepEqual(new ServiceRegistry(new MemoryDecisionLog(store), LEASE, undefined, later).list().map((v) => v.service), ['inventory']);
});
