import { createRequire } from 'node:module';
import { metrics } from '@opentelemetry/api';

// By the package's name, not a relative path: the same code runs from dist/ and from a bundle (scripts/bundle.mjs).
const TXMESH_VERSION = (createRequire(import.meta.url)('txmesh/package.json') as { version: string }).version;

/**
 * A constant series naming the running version (Prometheus' *_build_info convention), on the global meter
 * provider; it also keeps /metrics a complete exposition in a process that has recorded nothing yet.
 */
export function registerBuildInfo(role: string): void {
  metrics.getMeter('txmesh').createObservableGauge('txmesh_build_info', { description: 'The running txmesh version (always 1)' })
    .addCallback((result) => result.observe(1, { version: TXMESH_VERSION, role }));
}
