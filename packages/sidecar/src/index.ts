export { buildSidecar, startSidecar, type RunningSidecar } from './sidecar.ts';
export type { SidecarOptions } from './options.ts';
export type { PreparedRecord, PreparedStore } from './prepared-store.ts';
export { SqlitePreparedStore } from './sqlite-prepared-store.ts';
export { MemoryPreparedStore } from './memory-prepared-store.ts';
export { SidecarSteps, type SidecarStep } from './steps.ts';
export { SidecarMetrics, SidecarMetricNames } from './sidecar-metrics.ts';
