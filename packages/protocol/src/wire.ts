/**
 * Wire types spoken between client, coordinator shard, sidecar and service.
 *
 * Coordinator→sidecar and sidecar→service messages are batches from day one: a list of branch items
 * (prepare/commit/rollback for many transactions) answered by a list of results in the same order.
 */
import type { WaitEdge } from './isolation.ts';
import type { BranchState, Decision, Outcome, TxState, Vote } from './states.ts';
import type { TraceCarrier } from './trace.ts';

export const PROTOCOL_VERSION = 1;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** HTTP header names (lower case, as Node presents them). */
export const HeaderNames = {
  /** Transaction id carried by ordinary service traffic; the sidecar passes it through. */
  TX_CONTEXT: 'x-txmesh-tx',
  PROTOCOL_VERSION: 'x-txmesh-protocol',
  /** W3C trace context. */
  TRACEPARENT: 'traceparent',
} as const;

/** Routes. Coordinator routes under /v1, sidecar control routes under /txmesh/v1 (all else is proxied). */
export const Paths = {
  TRANSACTIONS: '/v1/transactions',
  TRANSACTION: '/v1/transactions/:txId',
  TRANSACTION_DECISION: '/v1/transactions/:txId/decision',
  SERVICES: '/v1/services',
  /** Liveness: the process answers. */
  COORDINATOR_HEALTH: '/v1/health',
  /** Readiness: recovery is done and the shard takes transactions (503 TXM_NOT_READY / TXM_SHUTTING_DOWN otherwise). */
  COORDINATOR_READY: '/v1/ready',
  COORDINATOR_STATS: '/v1/stats',
  /** Branches whose commit/rollback has gone unacknowledged past the in-doubt threshold. */
  IN_DOUBT: '/v1/in-doubt',
  /** A sidecar posts its service's wait-for edges here (WaitReport), for deadlock detection. */
  WAIT_FOR: '/v1/wait-for',
  SIDECAR_BATCH: '/txmesh/v1/batch',
  /** The coordinator's batch channel: a GET with `Upgrade: txmesh-batch/1`, then a frame per batch (batch-frames.ts). */
  SIDECAR_CHANNEL: '/txmesh/v1/channel',
  /** Liveness: the process answers. */
  SIDECAR_HEALTH: '/txmesh/v1/health',
  /** Readiness: every shard accepted the registration (503 TXM_NOT_READY / TXM_SHUTTING_DOWN otherwise). */
  SIDECAR_READY: '/txmesh/v1/ready',
  PARTICIPANT_BATCH: '/txmesh/participant/v1/batch',
  PARTICIPANT_PREPARED: '/txmesh/participant/v1/prepared',
  PARTICIPANT_USAGE: '/txmesh/participant/v1/usage',
  PARTICIPANT_STATS: '/txmesh/participant/v1/stats',
  /** The service's current wait-for edges (WaitReport). */
  PARTICIPANT_WAITS: '/txmesh/participant/v1/waits',
  /** The batch channel: a GET with `Upgrade: txmesh-batch/1` (batch-frames.ts). */
  PARTICIPANT_CHANNEL: '/txmesh/participant/v1/channel',
  SIDECAR_STATS: '/txmesh/v1/stats',
} as const;

export function transactionPath(txId: string): string {
  return `/v1/transactions/${encodeURIComponent(txId)}`;
}
export function decisionPath(txId: string): string {
  return `/v1/transactions/${encodeURIComponent(txId)}/decision`;
}

// ---------------------------------------------------------------- client → coordinator

export interface OperationSpec {
  /** Operation name the service's participant handles, e.g. "reserve". */
  op: string;
  /** Operation arguments; JSON object. */
  args?: JsonObject;
  /**
   * The version of the row this operation changes, as the caller read it: the participant votes no
   * (VERSION_CONFLICT) if the row has moved on since (optimistic check, made under the prepare's lock).
   */
  expectVersion?: number;
}

export interface ParticipantSpec {
  service: string;
  operations: OperationSpec[];
}

export interface BeginTransactionRequest {
  participants: ParticipantSpec[];
  /** Whole-transaction deadline in ms from arrival; prepares not answered by then count as no. */
  timeoutMs?: number;
  /**
   * How long each participant has to vote, in ms from arrival (capped by timeoutMs and by the
   * service's own prepareTimeoutMs at the coordinator); a vote not in by then means abort "TIMEOUT".
   */
  prepareTimeoutMs?: number;
  /** The same key always returns the first outcome and never runs the transaction twice. */
  idempotencyKey?: string;
}

export interface ParticipantResult {
  service: string;
  vote: Vote;
  /**
   * Why the participant did not vote yes: a token, either the service's own business reason
   * ("OUT_OF_STOCK") or one of the catalogue's (`Reasons`, e.g. "TIMEOUT", "UNREACHABLE", "LOCK_CONFLICT").
   */
  reason?: string;
  /** The raw text behind the reason (an exception message, the address that refused), for people. */
  details?: string;
}

export interface TransactionResult {
  txId: string;
  outcome: Outcome;
  /** For an abort: the deciding branch's reason (the first no, or "TIMEOUT"). Always a token. */
  reason?: string;
  /** For an abort: the raw text behind the reason, when there is one. */
  details?: string;
  participants: ParticipantResult[];
  durationMs: number;
}

export interface BranchStatus {
  service: string;
  state: BranchState;
  vote?: Vote;
  reason?: string;
  details?: string;
  /** Delivery attempts of the current phase's message. */
  attempts: number;
}

export interface TransactionStatus {
  txId: string;
  shard: number;
  state: TxState;
  outcome?: Outcome;
  reason?: string;
  createdAt: number;
  decidedAt?: number;
  branches: BranchStatus[];
}

export interface DecisionAnswer {
  txId: string;
  decision: Decision;
}

/** One branch whose commit/rollback has gone unacknowledged past the in-doubt threshold. */
export interface InDoubtBranch {
  txId: string;
  service: string;
  action: 'commit' | 'rollback';
  /** Since the decision. */
  ageMs: number;
  attempts: number;
  /** Why the latest attempt failed, as a token (a catalogue reason or the participant's own). */
  lastError?: string;
  /** The raw text of the latest failure (exception message, address), for people. */
  details?: string;
  sidecarUrl?: string;
}

/** GET /v1/in-doubt */
export interface InDoubtList {
  shard: number;
  thresholdMs: number;
  branches: InDoubtBranch[];
}

/** GET /v1/ready and GET /txmesh/v1/ready when ready (otherwise an error body with status 503). */
export interface ReadyAnswer {
  ready: true;
  /** What became ready, e.g. "coordinator shard 0 of 2" or "sidecar of inventory". */
  role: string;
}

// ---------------------------------------------------------------- registry

/** What a participant SDK measures of its own process and attaches to its batch answers. */
export interface ServiceUsage {
  /** Epoch ms the figures were taken. */
  at: number;
  /** The service's CPU use as a percentage of what it may use (100 = its whole cgroup quota or all cores). */
  cpuPercent?: number;
  /** Cores the service may use: the cgroup quota, else the machine's available parallelism. */
  cpuLimitCores?: number;
  rssBytes?: number;
  /** The container's memory limit; absent when there is none. */
  memoryLimitBytes?: number;
  /** The service's event-loop delay (p99 over the last period), as its participant SDK measured it. */
  eventLoopDelayMs?: number;
}

/** The sidecar's report to the shards: the service's own usage plus what the sidecar sees of it. */
export interface ResourceReport extends ServiceUsage {
  /** Latency of requests to the service (proxied and batch calls) seen by the sidecar, from a histogram. */
  latencyP50Ms?: number;
  latencyP99Ms?: number;
  /** Requests to the service in flight at the sidecar. */
  inFlight?: number;
  /** Epoch ms of the service's own usage figures (cpu, memory, loop delay); older than `at` when idle. */
  usageAt?: number;
}

/** The coordinator scheduler's view of one service (GET /v1/services). */
export interface SchedulerView {
  enabled: boolean;
  /** Prepares this shard lets be in flight to the service at once. */
  limit: number;
  inFlight: number;
  queued: number;
  estimatedWaitMs: number;
  latencyMs?: number;
  bestLatencyMs?: number;
}

export interface RegisterServiceRequest {
  service: string;
  /** Where the coordinator sends branch batches. */
  sidecarUrl: string;
  report?: ResourceReport;
  /**
   * The shard number and shard count the sender believes it is talking to. A shard refuses a mismatch
   * (TXM_WRONG_SHARD), so a sidecar configured for another cluster, or one whose shard's port was taken by
   * another process, can never steer this shard's branches to a service that is not its own.
   */
  shard?: number;
  shards?: number;
}

export interface RegisterServiceResponse {
  shard: number;
  shards: number;
  /** How often the sidecar should re-register (heartbeat). */
  heartbeatMs: number;
}

/** GET /v1/services of one shard. */
export interface ServicesAnswer {
  services: ServiceView[];
}

export interface ServiceView {
  service: string;
  sidecarUrl: string;
  registeredAt: number;
  lastSeenAt: number;
  report?: ResourceReport;
  scheduler?: SchedulerView;
}

// ---------------------------------------------------------------- batches (coordinator → sidecar → service)

export const BranchAction = {
  PREPARE: 'prepare',
  COMMIT: 'commit',
  ROLLBACK: 'rollback',
} as const;
export type BranchAction = (typeof BranchAction)[keyof typeof BranchAction];

export interface BranchItem {
  action: BranchAction;
  txId: string;
  service: string;
  /** Present on prepare: what the branch must do. */
  operations?: OperationSpec[];
  /** On prepare: epoch ms after which the coordinator no longer waits for the vote. */
  deadline?: number;
  /** This item's own trace context (its branch span); absent when the sender does not trace. */
  trace?: TraceCarrier;
}

export interface BranchBatchRequest {
  protocolVersion: number;
  items: BranchItem[];
}

/**
 * A batch over the coordinator's batch channel: a frame has no headers, so the trace context the HTTP request
 * carries in its traceparent header (the coordinator's batch span) rides in the body.
 */
export interface BatchChannelRequest extends BranchBatchRequest {
  trace?: TraceCarrier;
  /**
   * The caller reads compact answers (validateCompactBatchResponse): a result that is a plain `ok` for the item
   * at its place (same txId and action, no reason, no message) may be answered as COMPACT_OK instead of the
   * object. A server that does not know the field answers every result in full, which is read as before.
   */
  compactResults?: true;
}

/** A compact answer's result for "ok, for the item at this place" (BatchChannelRequest.compactResults). */
export const COMPACT_OK = 1;

export const ItemStatus = {
  /** prepare: voted yes. commit/rollback: acknowledged (applied now or earlier). */
  OK: 'ok',
  /** prepare only: voted no for a reason that will not change on retry (business refusal, lock timeout). */
  NO: 'no',
  /** Transient failure: the sender may retry the item. Nothing was decided by this answer. */
  ERROR: 'error',
} as const;
export type ItemStatus = (typeof ItemStatus)[keyof typeof ItemStatus];

export interface BranchItemResult {
  txId: string;
  action: BranchAction;
  status: ItemStatus;
  /**
   * Short machine-readable reason for NO/ERROR, a token (see isReasonToken), e.g. "OUT_OF_STOCK",
   * "LOCK_TIMEOUT", "TXM_SERVICE_UNREACHABLE". The coordinator passes it on as the branch's reason.
   */
  reason?: string;
  /** Human sentence or raw error text; the coordinator passes it on as the branch's details. */
  message?: string;
}

export interface BranchBatchResponse {
  protocolVersion: number;
  /** One result per item, in the order of the request's items. */
  results: BranchItemResult[];
  /** Piggybacked resource figures of the service behind the sidecar. */
  report?: ResourceReport;
  /** Service → sidecar only: the service process's own usage figures. */
  usage?: ServiceUsage;
  /** The service's wait-for edges when the batch was answered (deadlock detection). */
  waits?: WaitEdge[];
}

/** What a participant service answers about branches it holds prepared but undecided. */
export interface PreparedListResponse {
  service: string;
  prepared: { txId: string; preparedAt: number }[];
}
