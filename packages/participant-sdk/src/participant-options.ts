/** A participant's options and their defaults, checked once at creation so a typo fails at start. */
import type Database from 'better-sqlite3';
import { DeadlockMode, isDeadlockMode, isKey, isValidName } from '@txmesh/protocol';
import { resolveBranchRetention, type BranchRetention, type BranchRetentionOptions } from './branch-retention.ts';
import type { OperationHandlers } from './operation.ts';

/** What every participant takes, whatever its database. */
export interface CommonParticipantOptions extends BranchRetentionOptions {
  service: string;
  /** Default 1000: waiting longer for a lock votes no with reason LOCK_TIMEOUT. */
  lockWaitMs?: number;
  /**
   * Default 100, wait-die only: how long a transaction waits for a lock held or awaited by an OLDER
   * transaction before it votes no with LOCK_CONFLICT.
   */
  lockGraceMs?: number;
  /**
   * Default 'detect': waits last up to lockWaitMs and this service reports who waits for whom, so the
   * coordinator can abort the youngest transaction of a cycle. 'wait-die': a younger transaction
   * behind an older one gives up after lockGraceMs. 'timeout': waits last up to lockWaitMs, no reports.
   */
  deadlock?: DeadlockMode;
  /** Where unexpected hook failures are reported; default: one JSON line on stderr. */
  log?: (entry: Record<string, unknown>) => void;
  /**
   * Default true: measure this process (CPU against its cgroup quota, memory, event-loop delay) and attach
   * the figures to batch answers, for the sidecar's resource report.
   */
  resourceUsage?: boolean;
  /**
   * This service's key(s) (hex, issued with `txmesh credentials service NAME`): when given, the participant
   * routes take only this service's sidecar. Omitted: anyone who can reach them may vote and decide.
   */
  keys?: readonly string[];
  /**
   * Default true: a sidecar may send this participant's batches over the batch channel (one connection it
   * upgrades once, a frame per batch), which runs none of the app's fastify hooks. false: no channel, so every
   * batch is a request to the HTTP route; for a service that hooks that route (its sidecar then uses HTTP).
   */
  batchChannel?: boolean;
}

/** A participant over a better-sqlite3 database: synchronous hooks that get the same `db`. */
export interface ParticipantOptions extends CommonParticipantOptions {
  db: Database.Database;
  operations: Record<string, OperationHandlers<any>>;
}

export type ParticipantLog = (entry: Record<string, unknown>) => void;

export interface ResolvedParticipantOptions {
  service: string;
  lockWaitMs: number;
  lockGraceMs: number;
  deadlock: DeadlockMode;
  log: ParticipantLog;
  retention: BranchRetention;
  resourceUsage: boolean;
  keys: readonly string[] | undefined;
  batchChannel: boolean;
}

const DEFAULT_LOCK_WAIT_MS = 1000;
const DEFAULT_LOCK_GRACE_MS = 100;
/** setTimeout fires at once for longer delays. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function timerMs(value: number | undefined, fallback: number, field: string): number {
  const ms = value ?? fallback;
  if (!Number.isInteger(ms) || ms < 0 || ms > MAX_TIMER_MS) throw new TypeError(`${field} must be an integer from 0 to ${MAX_TIMER_MS}, got ${ms}`);
  return ms;
}

function resolveKeys(keys: readonly string[] | undefined): readonly string[] | undefined {
  if (keys === undefined) return undefined;
  if (keys.length === 0 || !keys.every(isKey)) throw new TypeError('keys must be a non-empty list of 64-hex-digit service keys');
  return [...keys];
}

export function resolveParticipantOptions(options: CommonParticipantOptions): ResolvedParticipantOptions {
  if (!isValidName(options.service)) throw new TypeError(`service must be a service name, got ${JSON.stringify(options.service)}`);
  const lockWaitMs = timerMs(options.lockWaitMs, DEFAULT_LOCK_WAIT_MS, 'lockWaitMs');
  const lockGraceMs = timerMs(options.lockGraceMs, DEFAULT_LOCK_GRACE_MS, 'lockGraceMs');
  const service = options.service;
  const deadlock = options.deadlock ?? DeadlockMode.DETECT;
  if (!isDeadlockMode(deadlock)) throw new TypeError(`deadlock must be one of ${Object.values(DeadlockMode).join(', ')}, got ${String(deadlock)}`);
  return {
    deadlock,
    service,
    lockWaitMs,
    lockGraceMs,
    log: options.log ?? ((entry) => process.stderr.write(`${JSON.stringify({ component: 'participant-sdk', service, ...entry })}\n`)),
    retention: resolveBranchRetention(options),
    resourceUsage: options.resourceUsage ?? true,
    keys: resolveKeys(options.keys),
    batchChannel: options.batchChannel ?? true,
  };
}
