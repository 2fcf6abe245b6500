export { labMain } from './main.ts';
export { Cluster, Member, sleep, type ClusterOptions, type MemberRole } from './cluster.ts';
export { verifyCluster, waitForQuiescence, fetchSummaries, type VerifyReport } from './verify.ts';
export { runDemo, formatSummary, percentile, type DemoOptions, type DemoSummary } from './demo.ts';
export { runBench, processCpuMs, processMemoryMb, type BenchOptions, type BenchReport } from './bench.ts';
export { FaultProxy, type Direction, type LinkMode } from './fault-proxy.ts';
export { runChaos, type ChaosOptions, type ChaosSummary } from './chaos.ts';
