export { Cluster, Member, sleep, type ClusterOptions, type MemberRole } from './cluster.ts';
export { verifyCluster, waitForQuiescence, fetchSummaries, type VerifyReport } from './verify.ts';
export { runDemo, formatSummary, percentile, type DemoOptions, type DemoSummary } from './demo.ts';
export { main } from './main.ts';
