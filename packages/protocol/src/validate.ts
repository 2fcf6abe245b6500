/**
 * Validation of what arrives from outside. Each function returns a clean typed value or throws a
 * TxmeshError naming the field, and never mutates its input.
 */
import { TxmeshError } from './errors.ts';
import { Reason, isReasonToken } from './reasons.ts';
import { isTxId } from './tx-id.ts';
import type { WaitEdge, WaitReport } from './isolation.ts';
import { validTraceCarrier } from './trace.ts';
import {
  BranchAction,
  COMPACT_OK,
  ItemStatus,
  PROTOCOL_VERSION,
  type BeginTransactionRequest,
  type BranchBatchRequest,
  type BranchBatchResponse,
  type BranchItem,
  type BranchItemResult,
  type JsonObject,
  type OperationSpec,
  type ParticipantSpec,
  type RegisterServiceRequest,
  type ResourceReport,
  type ServiceUsage,
} from './wire.ts';

export interface RequestLimits {
  maxParticipants: number;
  maxOperationsPerParticipant: number;
  minTimeoutMs: number;
  maxTimeoutMs: number;
  maxBatchItems: number;
}

export const DEFAULT_LIMITS: RequestLimits = {
  maxParticipants: 64,
  maxOperationsPerParticipant: 64,
  minTimeoutMs: 10,
  maxTimeoutMs: 600_000,
  maxBatchItems: 4096,
};

/** The largest batch body any component takes (sidecar and participant alike): 4096 items with their operations. */
export const MAX_BATCH_BODY_BYTES = 16 * 1024 * 1024;
/** How long a request may take to arrive completely before the server answers TXM_REQUEST_TIMEOUT (slow-body clients). */
export const REQUEST_TIMEOUT_MS = 30_000;

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/**
 * How deep an operation's args may nest. Hashing, storing and answering walk the args recursively; a
 * bound here keeps a hostile body from exhausting a stack anywhere downstream. Real args are shallow.
 */
export const MAX_ARGS_DEPTH = 32;
const MAX_IDEMPOTENCY_KEY = 200;

/** A JSON object (not null, not an array). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function bad(details: string): never {
  throw new TxmeshError('TXM_BAD_REQUEST', details);
}

export function isValidName(value: unknown): value is string {
  return typeof value === 'string' && NAME_PATTERN.test(value);
}

/**
 * True when `value` nests objects/arrays deeper than `max` levels. The walk stops at `max` levels, so deep input
 * cannot overflow the stack; it allocates nothing (every begin walks every operation's args).
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  return deeperThan(value, 0, max);
}

function deeperThan(node: unknown, depth: number, max: number): boolean {
  if (node === null || typeof node !== 'object') return false;
  if (depth >= max) return true;
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) if (deeperThan(node[i], depth + 1, max)) return true;
    return false;
  }
  // Own enumerable keys, as Object.values, without its array.
  for (const key in node) {
    if (Object.hasOwn(node, key) && deeperThan((node as Record<string, unknown>)[key], depth + 1, max)) return true;
  }
  return false;
}

/** `list`[i].operations[j]: the operation's place in a refusal's message, written only when there is one. */
function operation(value: unknown, list: 'participants' | 'items', i: number, j: number): OperationSpec {
  if (!isPlainObject(value)) bad(`${list}[${i}].operations[${j}] must be an object`);
  if (!isValidName(value.op)) bad(`${list}[${i}].operations[${j}].op must be a name of letters, digits, . _ - (1-63 chars)`);
  const spec: OperationSpec = { op: value.op };
  if (value.args !== undefined) {
    if (!isPlainObject(value.args)) bad(`${list}[${i}].operations[${j}].args must be a JSON object`);
    if (nestsDeeperThan(value.args, MAX_ARGS_DEPTH)) bad(`${list}[${i}].operations[${j}].args nest deeper than ${MAX_ARGS_DEPTH} levels`);
    spec.args = value.args as JsonObject;
  }
  if (value.expectVersion !== undefined) {
    if (typeof value.expectVersion !== 'number' || !Number.isSafeInteger(value.expectVersion) || value.expectVersion < 0) {
      bad(`${list}[${i}].operations[${j}].expectVersion must be a non-negative integer`);
    }
    spec.expectVersion = value.expectVersion;
  }
  return spec;
}

export function validateBeginRequest(body: unknown, limits: RequestLimits = DEFAULT_LIMITS): BeginTransactionRequest {
  if (!isPlainObject(body)) bad('body must be a JSON object');
  const { participants, timeoutMs, prepareTimeoutMs, idempotencyKey } = body;
  if (participants === undefined || (Array.isArray(participants) && participants.length === 0)) {
    throw new TxmeshError('TXM_NO_PARTICIPANTS');
  }
  if (!Array.isArray(participants)) bad('participants must be an array');
  if (participants.length > limits.maxParticipants) {
    throw new TxmeshError('TXM_TOO_MANY_PARTICIPANTS', `${participants.length} > ${limits.maxParticipants}`);
  }
  const seen = new Set<string>();
  // Loops rather than map callbacks, and the place of a field written only into a refusal: every begin runs this.
  const clean: ParticipantSpec[] = [];
  for (let i = 0; i < participants.length; i++) {
    const p: unknown = participants[i];
    if (!isPlainObject(p)) bad(`participants[${i}] must be an object`);
    if (!isValidName(p.service)) bad(`participants[${i}].service must be a service name of letters, digits, . _ - (1-63 chars)`);
    if (seen.has(p.service)) throw new TxmeshError('TXM_DUPLICATE_PARTICIPANT', p.service);
    seen.add(p.service);
    const raw = p.operations;
    if (!Array.isArray(raw) || raw.length === 0) bad(`participants[${i}].operations must be a non-empty array`);
    if (raw.length > limits.maxOperationsPerParticipant) {
      bad(`participants[${i}].operations has ${raw.length} entries, more than ${limits.maxOperationsPerParticipant}`);
    }
    const operations: OperationSpec[] = [];
    for (let j = 0; j < raw.length; j++) operations.push(operation(raw[j], 'participants', i, j));
    clean.push({ service: p.service, operations });
  }
  const request: BeginTransactionRequest = { participants: clean };
  if (timeoutMs !== undefined) {
    if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < limits.minTimeoutMs || timeoutMs > limits.maxTimeoutMs) {
      throw new TxmeshError('TXM_BAD_TIMEOUT', `timeoutMs must be an integer from ${limits.minTimeoutMs} to ${limits.maxTimeoutMs}`);
    }
    request.timeoutMs = timeoutMs;
  }
  if (prepareTimeoutMs !== undefined) {
    if (
      typeof prepareTimeoutMs !== 'number' || !Number.isInteger(prepareTimeoutMs) ||
      prepareTimeoutMs < limits.minTimeoutMs || prepareTimeoutMs > limits.maxTimeoutMs
    ) {
      throw new TxmeshError('TXM_BAD_TIMEOUT', `prepareTimeoutMs must be an integer from ${limits.minTimeoutMs} to ${limits.maxTimeoutMs}`);
    }
    request.prepareTimeoutMs = prepareTimeoutMs;
  }
  if (idempotencyKey !== undefined) {
    if (typeof idempotencyKey !== 'string' || idempotencyKey.length === 0 || idempotencyKey.length > MAX_IDEMPOTENCY_KEY) {
      bad(`idempotencyKey must be a non-empty string of at most ${MAX_IDEMPOTENCY_KEY} characters`);
    }
    request.idempotencyKey = idempotencyKey;
  }
  return request;
}

const ACTIONS = new Set<string>(Object.values(BranchAction));

/** What every batch message must be: an object of this protocol version carrying a bounded list in `field`. */
function batchEnvelope(body: unknown, field: 'items' | 'results', limits: RequestLimits): { list: unknown[]; fields: Record<string, unknown> } {
  if (!isPlainObject(body)) bad('body must be a JSON object');
  if (body.protocolVersion !== PROTOCOL_VERSION) {
    const got = typeof body.protocolVersion === 'number' ? String(body.protocolVersion) : typeof body.protocolVersion;
    throw new TxmeshError('TXM_PROTOCOL_VERSION', `expected ${PROTOCOL_VERSION}, got ${got}`);
  }
  const list = body[field];
  if (!Array.isArray(list)) bad(`${field} must be an array`);
  if (list.length > limits.maxBatchItems) bad(`${field} has more than ${limits.maxBatchItems} entries`);
  return { list, fields: body };
}

export function validateBatchRequest(body: unknown, limits: RequestLimits = DEFAULT_LIMITS): BranchBatchRequest {
  const { list } = batchEnvelope(body, 'items', limits);
  const items: BranchItem[] = list.map((raw: unknown, i: number) => {
    const where = `items[${i}]`;
    if (!isPlainObject(raw)) bad(`${where} must be an object`);
    if (typeof raw.action !== 'string' || !ACTIONS.has(raw.action)) bad(`${where}.action must be prepare, commit or rollback`);
    if (!isTxId(raw.txId)) bad(`${where}.txId is not a transaction id`);
    if (!isValidName(raw.service)) bad(`${where}.service must be a service name`);
    const item: BranchItem = { action: raw.action as BranchAction, txId: raw.txId, service: raw.service };
    if (raw.action === BranchAction.PREPARE) {
      if (!Array.isArray(raw.operations) || raw.operations.length === 0) bad(`${where}.operations must be a non-empty array`);
      if (raw.operations.length > limits.maxOperationsPerParticipant) bad(`${where}.operations has more than ${limits.maxOperationsPerParticipant} entries`);
      item.operations = raw.operations.map((o: unknown, j: number) => operation(o, 'items', i, j));
      if (raw.deadline !== undefined) {
        if (typeof raw.deadline !== 'number' || !Number.isFinite(raw.deadline)) bad(`${where}.deadline must be epoch milliseconds`);
        item.deadline = raw.deadline;
      }
    }
    const trace = validTraceCarrier(raw.trace);
    if (trace !== undefined) item.trace = trace;
    return item;
  });
  return { protocolVersion: PROTOCOL_VERSION, items };
}

const STATUSES = new Set<string>(Object.values(ItemStatus));
/** Longer messages are cut: they are for people, and a runaway one must not bloat logs and answers. */
const MAX_MESSAGE_CHARS = 1000;

/**
 * A sidecar's (or a service's) answer to a batch. Throws TXM_PROTOCOL_VERSION or TXM_BAD_REQUEST naming
 * what is wrong with its shape. A result whose reason is not a token keeps its status; its reason
 * becomes BAD_ANSWER and the text it carried moves to the message, so free text never becomes a reason.
 */
export function validateBatchResponse(body: unknown, limits: RequestLimits = DEFAULT_LIMITS): BranchBatchResponse {
  const { list, fields } = batchEnvelope(body, 'results', limits);
  // The item's place is written only into a refusal: a busy coordinator validates eight results per transaction.
  const results = list.map(itemResult);
  const response: BranchBatchResponse = { protocolVersion: PROTOCOL_VERSION, results };
  if (isPlainObject(fields.report)) response.report = fields.report as unknown as ResourceReport;
  if (isPlainObject(fields.usage)) response.usage = fields.usage as unknown as ServiceUsage;
  return response;
}

/**
 * A compact answer to a batch channel request that asked for one (BatchChannelRequest.compactResults): as
 * validateBatchResponse, except that a result may be COMPACT_OK, read as `ok` for the item at its place. The
 * plain yes votes and acknowledgements that are nearly every result then cost neither their text nor an object to
 * parse and check; a full result is checked as ever. A COMPACT_OK past the end of `items` is refused.
 */
export function validateCompactBatchResponse(body: unknown, items: readonly BranchItem[], limits: RequestLimits = DEFAULT_LIMITS): BranchBatchResponse {
  const { list, fields } = batchEnvelope(body, 'results', limits);
  const results: BranchItemResult[] = [];
  for (let i = 0; i < list.length; i++) {
    const raw = list[i];
    if (raw === COMPACT_OK) {
      const item = items[i];
      if (item === undefined) bad(`results[${i}] is ${COMPACT_OK} (ok) for an item that was not sent`);
      results.push({ txId: item.txId, action: item.action, status: ItemStatus.OK });
    } else {
      results.push(itemResult(raw, i));
    }
  }
  const response: BranchBatchResponse = { protocolVersion: PROTOCOL_VERSION, results };
  if (isPlainObject(fields.report)) response.report = fields.report as unknown as ResourceReport;
  if (isPlainObject(fields.usage)) response.usage = fields.usage as unknown as ServiceUsage;
  return response;
}

/**
 * The compact form of `response` for a request that asked for it: each result that is a plain `ok` for the
 * item at its place becomes COMPACT_OK; anything else (a no, an error, a reason or message, another item) stays
 * the object it is. `items` are the request's; a response that is not a batch response is returned as it is.
 */
export function compactBatchResponse(items: unknown, response: unknown): unknown {
  if (!Array.isArray(items) || !isPlainObject(response) || !Array.isArray(response.results)) return response;
  const results: unknown[] = response.results;
  const compact: unknown[] = new Array(results.length);
  for (let i = 0; i < results.length; i++) {
    const r: unknown = results[i];
    const item: unknown = items[i];
    compact[i] =
      isPlainObject(r) && isPlainObject(item) && r.status === ItemStatus.OK && r.reason === undefined && r.message === undefined && r.txId === item.txId && r.action === item.action
        ? COMPACT_OK
        : r;
  }
  return { ...response, results: compact };
}

function itemResult(raw: unknown, i: number): BranchItemResult {
  if (!isPlainObject(raw)) bad(`results[${i}] must be an object`);
  if (typeof raw.txId !== 'string') bad(`results[${i}].txId must be a string`);
  if (typeof raw.action !== 'string' || !ACTIONS.has(raw.action)) bad(`results[${i}].action must be prepare, commit or rollback`);
  if (typeof raw.status !== 'string' || !STATUSES.has(raw.status)) bad(`results[${i}].status must be ok, no or error`);
  if (raw.reason !== undefined && typeof raw.reason !== 'string') bad(`results[${i}].reason must be a string`);
  if (raw.message !== undefined && typeof raw.message !== 'string') bad(`results[${i}].message must be a string`);
  const result: BranchItemResult = { txId: raw.txId, action: raw.action as BranchAction, status: raw.status as ItemStatus };
  let message = raw.message;
  const reason: string | undefined = raw.reason;
  if (reason !== undefined && isReasonToken(reason)) {
    result.reason = reason;
  } else if (reason !== undefined) {
    result.reason = Reason.BAD_ANSWER;
    message = `the reason "${reason.slice(0, 200)}" is not a token${message === undefined ? '' : `; ${message}`}`;
  }
  if (message !== undefined) result.message = message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}…` : message;
  return result;
}

export function validateRegisterRequest(body: unknown): RegisterServiceRequest {
  if (!isPlainObject(body)) bad('body must be a JSON object');
  if (!isValidName(body.service)) bad('service must be a service name of letters, digits, . _ - (1-63 chars)');
  if (typeof body.sidecarUrl !== 'string') bad('sidecarUrl must be a URL string');
  let url: URL;
  try {
    url = new URL(body.sidecarUrl);
  } catch {
    bad('sidecarUrl must be an absolute http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') bad('sidecarUrl must be an http(s) URL');
  const request: RegisterServiceRequest = { service: body.service, sidecarUrl: url.origin };
  for (const field of ['shard', 'shards'] as const) {
    const value = body[field];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 100_000) bad(`${field} must be an integer from 0 to 100000`);
    request[field] = value;
  }
  if (body.report !== undefined) {
    if (!isPlainObject(body.report)) bad('report must be an object');
    const report: Record<string, number> = {};
    for (const [key, value] of Object.entries(body.report)) {
      if (typeof value === 'number' && Number.isFinite(value)) report[key] = value;
    }
    // `at` is when the figures were taken; one from the future would keep them "fresh" for good, so it is clamped.
    const now = Date.now();
    request.report = { ...report, at: Math.min(report.at ?? now, now) };
  }
  return request;
}

const MAX_WAIT_EDGES = 100_000;
const MAX_LOCK_KEY = 512;

/** Wait-for edges from a service (its batch answers or its sidecar's wait report); throws on anything else. */
export function validateWaitEdges(value: unknown, where = 'edges'): WaitEdge[] {
  if (!Array.isArray(value)) bad(`${where} must be an array`);
  if (value.length > MAX_WAIT_EDGES) bad(`${where} has more than ${MAX_WAIT_EDGES} entries`);
  return value.map((raw: unknown, i: number) => {
    if (!isPlainObject(raw)) bad(`${where}[${i}] must be an object`);
    if (!isTxId(raw.waiter) || !isTxId(raw.holder)) bad(`${where}[${i}].waiter and .holder must be transaction ids`);
    if (typeof raw.key !== 'string' || raw.key.length > MAX_LOCK_KEY) bad(`${where}[${i}].key must be a string of at most ${MAX_LOCK_KEY} characters`);
    const edge: WaitEdge = { waiter: raw.waiter, holder: raw.holder, key: raw.key };
    if (raw.since !== undefined) {
      if (typeof raw.since !== 'number' || !Number.isFinite(raw.since)) bad(`${where}[${i}].since must be epoch milliseconds`);
      edge.since = raw.since;
    }
    return edge;
  });
}

export function validateWaitReport(body: unknown): WaitReport {
  if (!isPlainObject(body)) bad('body must be a JSON object');
  if (!isValidName(body.service)) bad('service must be a service name of letters, digits, . _ - (1-63 chars)');
  return { service: body.service, edges: validateWaitEdges(body.edges) };
}
