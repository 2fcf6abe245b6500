export { buildCoordinator, startCoordinator, registerRoutes, decisionLogPath, BODY_LIMIT_BYTES } from './app.ts';
export type { CoordinatorOptions, Coordinator, CoordinatorParts } from './app.ts';
export { TransactionManager } from './transaction-manager.ts';
export type { ManagerStats, RecoverySummary } from './transaction-manager.ts';
export { DEFAULT_PRUNE_INTERVAL_MS, DEFAULT_IDEMPOTENCY_RETENTION_MS } from './manager-options.ts';
export type { TransactionManagerOptions, ManagerLogger } from './manager-options.ts';
export { GroupCommitLog } from './decision-log.ts';
export type { DecisionLog, DecisionRecord, DecisionState, FinalDecisionState, LoggedParticipant, StoredService, DecisionLogStats, LogWrite } from './decision-log.ts';
export { SqliteDecisionLog } from './sqlite-decision-log.ts';
export { MemoryDecisionLog, MemoryLogStore } from './memory-decision-log.ts';
export type { BranchTransport } from './branch-transport.ts';
export { HttpBranchTransport } from './http-transport.ts';
export {
  BranchCallError,
  TransportTimeoutError,
  SidecarUnreachableError,
  SidecarHttpError,
  BadAnswerError,
  DispatcherClosedError,
  branchCallErrorOf,
} from './branch-errors.ts';
export type { BranchFailureReason } from './branch-errors.ts';
export type { HttpBranchTransportOptions } from './http-transport.ts';
export { BatchingDispatcher, MAX_BATCH_ITEMS, MAX_WINDOW_MS, MAX_IN_FLIGHT_BATCHES } from './batching-dispatcher.ts';
export type { Dispatch, DispatchStats, DispatcherOptions } from './batching-dispatcher.ts';
export { Scheduler, OverloadedError } from './scheduler.ts';
export type { SchedulerOptions, Release } from './scheduler.ts';
export { backoffDelayMs, PREPARE_BACKOFF, DELIVERY_BACKOFF } from './backoff.ts';
export type { BackoffPolicy } from './backoff.ts';
export { requestHash } from './request-hash.ts';
export { validateServiceTimeouts } from './service-timeouts.ts';
export type { ServiceTimeouts, ServicePhaseTimeouts } from './service-timeouts.ts';
export { InDoubtMonitor, ALERT_TIMEOUT_MS } from './in-doubt-monitor.ts';
export type { InDoubtAlert, InDoubtMonitorOptions } from './in-doubt-monitor.ts';
export type { InDoubtBranch } from '@txmesh/protocol';
export type { PruneCutoffs, PruneResult, GroupCommitOptions } from './decision-log.ts';
export { CoordinatorSteps, type CoordinatorStep } from './steps.ts';
export { CoordinatorMetrics, CoordinatorMetricNames, type CoordinatorGaugeSource } from './coordinator-metrics.ts';
export { DASHBOARD_PATH, dashboardData, type DashboardData } from './dashboard/dashboard-routes.ts';
