/**
 * Validation of what arrives from outside. Each function returns a clean typed value or throws a
 * TxmeshError naming the field, and never mutates its input.
 */
import { TxmeshError } from './errors.ts';
import { isTxId } from './tx-id.ts';
import {
  BranchAction,
  PROTOCOL_VERSION,
  type BeginTransactionRequest,
  type BranchBatchRequest,
  type BranchItem,
  type JsonObject,
  type OperationSpec,
  type ParticipantSpec,
  type RegisterServiceRequest,
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

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const MAX_IDEMPOTENCY_KEY = 200;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function bad(details: string): never {
  throw new TxmeshError('TXM_BAD_REQUEST', details);
}

export function isValidName(value: unknown): value is string {
  return typeof value === 'string' && NAME_PATTERN.test(value);
}

function operation(value: unknown, where: string): OperationSpec {
  if (!isPlainObject(value)) bad(`${where} must be an object`);
  if (!isValidName(value.op)) bad(`${where}.op must be a name of letters, digits, . _ - (1-63 chars)`);
  const spec: OperationSpec = { op: value.op };
  if (value.args !== undefined) {
    if (!isPlainObject(value.args)) bad(`${where}.args must be a JSON object`);
    spec.args = value.args as JsonObject;
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
  const clean: ParticipantSpec[] = participants.map((p: unknown, i: number) => {
    const where = `participants[${i}]`;
    if (!isPlainObject(p)) bad(`${where} must be an object`);
    if (!isValidName(p.service)) bad(`${where}.service must be a service name of letters, digits, . _ - (1-63 chars)`);
    if (seen.has(p.service)) throw new TxmeshError('TXM_DUPLICATE_PARTICIPANT', p.service);
    seen.add(p.service);
    if (!Array.isArray(p.operations) || p.operations.length === 0) bad(`${where}.operations must be a non-empty array`);
    if (p.operations.length > limits.maxOperationsPerParticipant) {
      bad(`${where}.operations has ${p.operations.length} entries, more than ${limits.maxOperationsPerParticipant}`);
    }
    return { service: p.service, operations: p.operations.map((o: unknown, j: number) => operation(o, `${where}.operations[${j}]`)) };
  });
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

export function validateBatchRequest(body: unknown, limits: RequestLimits = DEFAULT_LIMITS): BranchBatchRequest {
  if (!isPlainObject(body)) bad('body must be a JSON object');
  if (body.protocolVersion !== PROTOCOL_VERSION) {
    const got = typeof body.protocolVersion === 'number' ? String(body.protocolVersion) : typeof body.protocolVersion;
    throw new TxmeshError('TXM_PROTOCOL_VERSION', `expected ${PROTOCOL_VERSION}, got ${got}`);
  }
  if (!Array.isArray(body.items)) bad('items must be an array');
  if (body.items.length > limits.maxBatchItems) bad(`items has more than ${limits.maxBatchItems} entries`);
  const items: BranchItem[] = body.items.map((raw: unknown, i: number) => {
    const where = `items[${i}]`;
    if (!isPlainObject(raw)) bad(`${where} must be an object`);
    if (typeof raw.action !== 'string' || !ACTIONS.has(raw.action)) bad(`${where}.action must be prepare, commit or rollback`);
    if (!isTxId(raw.txId)) bad(`${where}.txId is not a transaction id`);
    if (!isValidName(raw.service)) bad(`${where}.service must be a service name`);
    const item: BranchItem = { action: raw.action as BranchAction, txId: raw.txId, service: raw.service };
    if (raw.action === BranchAction.PREPARE) {
      if (!Array.isArray(raw.operations) || raw.operations.length === 0) bad(`${where}.operations must be a non-empty array`);
      item.operations = raw.operations.map((o: unknown, j: number) => operation(o, `${where}.operations[${j}]`));
      if (raw.deadline !== undefined) {
        if (typeof raw.deadline !== 'number' || !Number.isFinite(raw.deadline)) bad(`${where}.deadline must be epoch milliseconds`);
        item.deadline = raw.deadline;
      }
    }
    return item;
  });
  return { protocolVersion: PROTOCOL_VERSION, items };
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
    request.report = { at: Date.now(), ...report };
  }
  return request;
}
