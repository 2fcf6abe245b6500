/**
 * `txmesh bench-overload` end to end, small: three times more clients than the shard serves, a participant
 * answering slowly. Every client request gets an HTTP answer with a catalogue code (none is reset), the
 * connections past the cap are refused by the shard itself, and every probe is answered. Probe latency is
 * printed by the benchmark, not checked here (shared machines).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runTxmesh } from './helpers.ts';

test('past --max-connections every request is answered with a code, never reset, and the probes keep answering', { timeout: 120_000 }, async (t) => {
  const run = await runTxmesh(t, ['bench-overload', '--clients', '150', '--max-connections', '50', '--duration', '3', '--slow-ms', '300', '--probe-every', '100']);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as {
    answers: Record<string, number>;
    unanswered: Record<string, number>;
    probes: { sent: number; failed: number; p50Ms: number; maxMs: number };
    refusedByConnectionCap: number;
    coordinatorRssMb: number;
  };
  assert.deepEqual(report.unanswered, {}, 'no client request was left without an HTTP answer (reset, EPIPE)');
  for (const label of Object.keys(report.answers)) {
    assert.match(label, /^(200 (committed|aborted)|429 TXM_OVERLOADED|503 TXM_[A-Z_]+)$/, `an answer from the catalogue: ${label}`);
  }
  assert.ok((report.answers['429 TXM_OVERLOADED'] ?? 0) > 0, 'the crowd was refused with TXM_OVERLOADED');
  assert.ok(report.refusedByConnectionCap > 0, 'the shard counted refusals on connections past its cap');
  assert.ok(report.probes.sent > 0);
  assert.equal(report.probes.failed, 0, 'every liveness and readiness probe answered 200');
  assert.ok(report.probes.maxMs >= report.probes.p50Ms && report.coordinatorRssMb > 0);
});
