/**
 * Client of the coordinator shards. A begin with an idempotencyKey goes to the shard that owns the key
 * (so a retry can never run it on a second shard); one without goes round-robin and may fail over to
 * the next shard when the connection is refused. A status request goes to the shard the id names.
 */
import { Pool } from 'undici';
import {
  DEFAULT_LIMITS,
  Paths,
  TxmeshError,
  isErrorCode,
  isTxId,
  shardForIdempotencyKey,
  shardOfTxId,
  transactionPath,
  validateBeginRequest,
  type BeginTransactionRequest,
  type TransactionResult,
  type TransactionStatus,
} from '@txmesh/protocol';

export interface TxmeshClient {
  transaction(req: BeginTransactionRequest): Promise<TransactionResult>;
  status(txId: string): Promise<TransactionStatus>;
  close(): Promise<void>;
}

export interface TxmeshClientOptions {
  /** Index = shard number. */
  coordinatorUrls: string[];
  /** Keep-alive connections per shard (32): at most this many requests in flight to one shard. */
  connections?: number;
  /**
   * How many times a begin refused with TXM_OVERLOADED is sent again after the server's Retry-After (2).
   * Safe: an overload refusal happens before anything is sent or locked. 0 hands the refusal to the caller.
   */
  overloadRetries?: number;
}

/** A refusal the server asked to retry later, with how long to wait (HTTP Retry-After, seconds). */
export class RetryLaterError extends TxmeshError {
  readonly retryAfterMs: number;
  constructor(error: TxmeshError, retryAfterMs: number) {
    super(error.code, error.details);
    this.retryAfterMs = retryAfterMs;
  }
}

/** Waits at most this long for one Retry-After, whatever the server says. */
const MAX_RETRY_AFTER_MS = 10_000;

/** A begin may legitimately take the whole transaction timeout before the answer's headers arrive. */
const ANSWER_TIMEOUT_MS = DEFAULT_LIMITS.maxTimeoutMs + 60_000;

/** Failed before the request could reach the server: safe to send it to another shard. */
function neverReachedServer(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH';
}

function errorFromAnswer(statusCode: number, text: string, url: string): TxmeshError {
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; details?: unknown } } | null;
    const code = body?.error?.code;
    if (isErrorCode(code)) {
      const details = body?.error?.details;
      return new TxmeshError(code, typeof details === 'string' ? details : undefined);
    }
  } catch {
    // Not our error body (a proxy's HTML page, an empty answer): reported below with the status.
  }
  const seen = `HTTP ${statusCode} from ${url}: ${text.slice(0, 200)}`;
  // A gateway's 502/503/504 may come after it forwarded the request: the coordinator may have run
  // it, so the caller must not be told that nothing changed.
  if (statusCode >= 500) return new TxmeshError('TXM_COORDINATOR_UNREACHABLE', `${seen}; the outcome is unknown: poll status or resend with the same idempotencyKey`);
  return new TxmeshError('TXM_INTERNAL', seen);
}

export function createTxmeshClient(options: TxmeshClientOptions): TxmeshClient {
  const urls = options.coordinatorUrls.map((u) => new URL(u).origin);
  if (urls.length === 0) throw new TypeError('coordinatorUrls must list at least one coordinator shard');
  const pools = urls.map(
    (origin) => new Pool(origin, { connections: options.connections ?? 32, keepAliveTimeout: 30_000, headersTimeout: ANSWER_TIMEOUT_MS, bodyTimeout: ANSWER_TIMEOUT_MS }),
  );
  let nextShard = 0;
  const overloadRetries = options.overloadRetries ?? 2;
  if (!Number.isInteger(overloadRetries) || overloadRetries < 0) throw new TypeError('overloadRetries must be a non-negative integer');

  async function call<T>(shard: number, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const pool = pools[shard]!;
    const url = `${urls[shard]}${path}`;
    const res = await pool.request({
      method,
      path,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await res.body.text();
    if (res.statusCode < 200 || res.statusCode >= 300) {
      const error = errorFromAnswer(res.statusCode, text, url);
      const retryAfter = Number(res.headers['retry-after']);
      if (error.code === 'TXM_OVERLOADED' && Number.isFinite(retryAfter) && retryAfter >= 0) throw new RetryLaterError(error, Math.min(retryAfter * 1000, MAX_RETRY_AFTER_MS));
      throw error;
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new TxmeshError('TXM_INTERNAL', `HTTP ${res.statusCode} from ${url} is not JSON`);
    }
  }

  function unreachable(shard: number, err: unknown, consequence: string): TxmeshError {
    const cause = err instanceof Error ? err.message : String(err);
    return new TxmeshError('TXM_COORDINATOR_UNREACHABLE', `coordinator ${urls[shard]} did not answer (${cause}); ${consequence}`);
  }

  /** One begin: to the key's owner shard, or round-robin with failover when nothing was sent. */
  async function begin(request: BeginTransactionRequest): Promise<TransactionResult> {
    const key = request.idempotencyKey;
    const first = key === undefined ? nextShard : shardForIdempotencyKey(key, urls.length);
    if (key === undefined) nextShard = (nextShard + 1) % urls.length;
    const candidates = key === undefined ? urls.length : 1;
    let lastError: unknown;
    for (let attempt = 0; attempt < candidates; attempt++) {
      const shard = (first + attempt) % urls.length;
      try {
        return await call<TransactionResult>(shard, 'POST', Paths.TRANSACTIONS, request);
      } catch (err) {
        if (err instanceof TxmeshError) throw err;
        if (!neverReachedServer(err)) throw unreachable(shard, err, 'the outcome is unknown: poll status or resend with the same idempotencyKey');
        lastError = err;
      }
    }
    const cause = lastError instanceof Error ? lastError.message : String(lastError);
    throw new TxmeshError('TXM_COORDINATOR_UNREACHABLE', `no coordinator shard accepted a connection (${cause}); nothing was sent`);
  }

  return {
    async transaction(req) {
      const request = validateBeginRequest(req);
      for (let retry = 0; ; retry++) {
        try {
          return await begin(request);
        } catch (err) {
          if (!(err instanceof RetryLaterError) || retry >= overloadRetries) throw err;
          // Jittered so that every client refused together does not come back together.
          await new Promise((resolve) => setTimeout(resolve, err.retryAfterMs * (0.5 + Math.random() / 2)));
        }
      }
    },

    async status(txId) {
      if (!isTxId(txId)) throw new TxmeshError('TXM_BAD_TX_ID', String(txId));
      const shard = shardOfTxId(txId)!;
      if (shard >= urls.length) throw new TxmeshError('TXM_WRONG_SHARD', `shard ${shard} is not among the ${urls.length} coordinator URLs`);
      try {
        return await call<TransactionStatus>(shard, 'GET', transactionPath(txId));
      } catch (err) {
        if (err instanceof TxmeshError) throw err;
        throw unreachable(shard, err, 'ask again later');
      }
    },

    async close() {
      await Promise.all(pools.map((pool) => pool.close()));
    },
  };
}
