// Preload (--import) for probes: counts the process's garbage collections and their pause time by kind, and
// writes one line "TXMESH_GC_TOTALS {json}" on stderr when the process exits.
import { writeSync } from 'node:fs';
import { PerformanceObserver, constants } from 'node:perf_hooks';

const KINDS = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'markCompact',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incrementalMarking',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakCallbacks',
};
const totals = {};
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = KINDS[entry.detail?.kind] ?? String(entry.detail?.kind);
    const total = (totals[kind] ??= { count: 0, pauseMs: 0 });
    total.count += 1;
    total.pauseMs = Math.round((total.pauseMs + entry.duration) * 10) / 10;
  }
}).observe({ entryTypes: ['gc'] });
process.on('exit', () => writeSync(2, `TXMESH_GC_TOTALS ${JSON.stringify(totals)}\n`));
