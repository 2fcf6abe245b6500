/** The benchmark's summary for people (stderr): one paragraph per run, one line per target. */
import { round } from './bench-math.ts';
import type { NullEchoFigures } from './bench-null-echo.ts';
import type { BenchReport, TargetCheck } from './bench-report.ts';
import { largestPerRole } from './bench-roles.ts';
import type { RunFigures } from './bench-run-figures.ts';

export function describeRun(r: RunFigures, nullEcho: NullEchoFigures): string {
  const reasons = Object.entries(r.abortedByReason).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  const classes = r.byClass
    ? `\n    ${Object.entries(r.byClass).map(([k, c]) => `${k}: ${c.committedTps} tx/s p50 ${c.p50Ms} ms p99 ${c.p99Ms} ms, ${c.refused} refusals`).join('; ')}`
    : '';
  const rss = largestPerRole(Object.fromEntries(Object.entries(r.memoryMb).map(([name, m]) => [name, m.rssMb])));
  return [
    `[${r.label}] committed ${r.committedTps} tx/s (efficiency ${round(nullEcho.nullEchoRps > 0 ? r.committedTps / nullEcho.nullEchoRps : 0, 3)}), p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms${r.idle ? `; idle p50 ${r.idle.p50Ms} ms` : ''}`,
    `    aborted ${r.aborted} (${reasons}), refused ${r.refused}, errors ${r.errors}`,
    `    per tx: ${r.coordinatorFsyncsPerTx} coordinator fsyncs, ${r.requestsPerTx} requests (${r.requests.itemsPerBatch} items/batch), ${r.cpuMsPerTx} ms cluster CPU${classes}`,
    `    RSS at the end of the window (MB, largest of each role): ${Object.entries(rss).map(([role, mb]) => `${role} ${mb}`).join(', ')}`,
  ].join('\n');
}

export function formatTargets(report: BenchReport): string {
  return formatTargetList(report.targets);
}

export function formatTargetList(targets: readonly TargetCheck[]): string {
  return targets
    .map((t) => `  ${t.met ? 'MET   ' : 'MISSED'} ${t.target}: ${t.value} (limit ${t.limit}, ratio ${t.ratio})${t.note ? ` [${t.note}]` : ''}`)
    .join('\n');
}
