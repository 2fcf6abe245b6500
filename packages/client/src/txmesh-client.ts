/**
 * Client of the coordinator shards. A begin with an idempotencyKey goes to the shard that owns the key
 * (so a retry can never run it on a second shard); one without goes round-robin and may fail over to
 * the next shard when the connection is refused. A status request goes to the shard the id names. The
 * operator views (in-doubt branches, registered services) ask every shard.
 */
import {
  CallerRole,
  Paths,
  TxmeshError,
  authorizationHeader,
  isKey,
  isValidName,
  isTxId,
  shardForIdempotencyKey,
  shardOfTxId,
  transactionPath,
  validateBeginRequest,
  type BeginTransactionRequest,
  type ErrorBody,
  type InDoubtList,
  type ServicesAnswer,
  type TransactionResult,
  type TransactionStatus,
} from '@txmesh/protocol';
import { HttpCallError, JsonHttpClient, describeAnswer, type HttpStack, type JsonAnswer } from './json-http-client.ts';
import { inTransactionSpan, withTraceHeaders } from './transaction-span.ts';

export interface TxmeshClient {
  transaction(req: BeginTransactionRequest): Promise<TransactionResult>;
  status(txId: string): Promise<TransactionStatus>;
  /** Every shard's in-doubt branches (older than its threshold, or than `olderThanMs`). */
  inDoubt(options?: { olderThanMs?: number }): Promise<ShardAnswer<InDoubtList>[]>;
  /** Every shard's registered services with their resource reports. */
  services(): Promise<ShardAnswer<ServicesAnswer>[]>;
  close(): Promise<void>;
}

/** One shard's answer to a question asked of every shard: what it said, or why it could not say. */
export type ShardAnswer<T> = { shard: number; url: string; answer: T } | { shard: number; url: string; error: ErrorBody['error'] };

export interface TxmeshClientOptions {
  /** Index = shard number. */
  coordinatorUrls: string[];
  /** Keep-alive connections per shard (DEFAULT_CLIENT_CONNECTIONS, 128): at most this many requests in flight to one shard. */
  connections?: number;
  /**
   * How many times a begin refused with TXM_OVERLOADED is sent again after the server's Retry-After (2).
   * Safe: an overload refusal happens before anything is sent or locked. 0 hands the refusal to the caller.
   */
  overloadRetries?: number;
  /** Time bound of a status, in-doubt or services call (10 000 ms). */
  requestTimeoutMs?: number;
  /**
   * How long a begin waits for its answer beyond the transaction's timeoutMs (30 000 ms): the answer comes
   * after the decision is durable. Past it the outcome is unknown (TXM_COORDINATOR_UNREACHABLE).
   */
  answerMarginMs?: number;
  /**
   * The HTTP stack ('undici'): it costs less CPU per call than 'node:http', which an application starting many
   * transactions a second notices; 'node:http' starts faster, for a short-lived process making a few calls.
   */
  stack?: HttpStack;
  /**
   * This application's client name and key (hex, issued with `txmesh credentials client NAME`): needed
   * when the coordinators run with credentials (the default of `txmesh coordinator`).
   */
  credential?: { name: string; key: string };
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
/** The coordinator's deadline for a begin that names none. */
const DEFAULT_TX_TIMEOUT_MS = 5000;

/** The refusal in an error answer, or what the answer says when it is not one of ours. */
function errorFromAnswer(answer: JsonAnswer, url: string): TxmeshError {
  const error = TxmeshError.fromBody(answer.body);
  if (error) {
    const retryAfter = Number(answer.headers['retry-after']);
    if (error.code === 'TXM_OVERLOADED' && Number.isFinite(retryAfter) && retryAfter >= 0) return new RetryLaterError(error, Math.min(retryAfter * 1000, MAX_RETRY_AFTER_MS));
    return error;
  }
  const seen = `${describeAnswer(answer)} from ${url}`;
  // A gateway's 502/503/504 may come after it forwarded the request: the coordinator may have run
  // it, so the caller must not be told that nothing changed.
  if (answer.status >= 500) return new TxmeshError('TXM_COORDINATOR_UNREACHABLE', `${seen}; the outcome is unknown: poll status or resend with the same idempotencyKey`);
  return new TxmeshError('TXM_INTERNAL', seen);
}

/**
 * Connections per shard unless told otherwise. HTTP/1.1 carries one request at a time on a connection, so a
 * pool smaller than the application's concurrency queues transactions in the client, where the coordinator
 * cannot batch them: the demo at 64 with 32 connections ran 701 tx/s at p50 85 ms, with 64 connections 928 tx/s
 * at p50 63 ms (2,000 orders each). Connections open only when every one is busy, so an application at 10
 * concurrent transactions still holds about 10.
 */
export const DEFAULT_CLIENT_CONNECTIONS = 128;

export function createTxmeshClient(options: TxmeshClientOptions): TxmeshClient {
  const urls = options.coordinatorUrls.map((u) => new URL(u).origin);
  if (urls.length === 0) throw new TypeError('coordinatorUrls must list at least one coordinator shard');
  const overloadRetries = options.overloadRetries ?? 2;
  if (!Number.isInteger(overloadRetries) || overloadRetries < 0) throw new TypeError('overloadRetries must be a non-negative integer');
  const answerMarginMs = options.answerMarginMs ?? 30_000;
  const credential = options.credential;
  if (credential !== undefined && (!isValidName(credential.name) || !isKey(credential.key))) {
    throw new TypeError('credential needs a client name (letters, digits, . _ -) and its 64-hex-digit key');
  }
  const headers: Record<string, string> = credential ? { authorization: authorizationHeader(CallerRole.CLIENT, credential.name, credential.key) } : {};
  const http = new JsonHttpClient({ timeoutMs: options.requestTimeoutMs ?? 10_000, connections: options.connections ?? DEFAULT_CLIENT_CONNECTIONS, stack: options.stack ?? 'undici', headers });
  let nextShard = 0;

  /** The body of a 2xx answer; anything else becomes a TxmeshError (a call without an answer stays an HttpCallError). */
  async function call<T>(shard: number, path: string, body?: unknown, timeoutMs?: number): Promise<T> {
    const url = `${urls[shard]}${path}`;
    // The active span's trace context (the application's transaction span) goes in the traceparent header.
    const headers = withTraceHeaders({});
    const answer = await http.request(urls[shard]!, path, { headers, ...(body === undefined ? {} : { body }), ...(timeoutMs === undefined ? {} : { timeoutMs }) });
    if (answer.status < 200 || answer.status >= 300) throw errorFromAnswer(answer, url);
    if (answer.body === undefined) throw new TxmeshError('TXM_INTERNAL', `${describeAnswer(answer)} from ${url} is not JSON`);
    return answer.body as T;
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
    const timeoutMs = (request.timeoutMs ?? DEFAULT_TX_TIMEOUT_MS) + answerMarginMs;
    let lastError: unknown;
    for (let attempt = 0; attempt < candidates; attempt++) {
      const shard = (first + attempt) % urls.length;
      try {
        return await call<TransactionResult>(shard, Paths.TRANSACTIONS, request, timeoutMs);
      } catch (err) {
        if (err instanceof TxmeshError) throw err;
        if (!(err instanceof HttpCallError && err.nothingSent)) throw unreachable(shard, err, 'the outcome is unknown: poll status or resend with the same idempotencyKey');
        lastError = err;
      }
    }
    const cause = lastError instanceof Error ? lastError.message : String(lastError);
    throw new TxmeshError('TXM_COORDINATOR_UNREACHABLE', `no coordinator shard accepted a connection (${cause}); nothing was sent`);
  }

  /** Asks every shard at once; a shard that cannot answer is reported in place, not thrown. */
  function everyShard<T>(path: string): Promise<ShardAnswer<T>[]> {
    return Promise.all(
      urls.map(async (url, shard): Promise<ShardAnswer<T>> => {
        try {
          return { shard, url, answer: await call<T>(shard, path) };
        } catch (err) {
          const error = err instanceof TxmeshError ? err : unreachable(shard, err, 'ask again later');
          return { shard, url, error: error.toBody().error };
        }
      }),
    );
  }

  return {
    async transaction(req) {
      const request = validateBeginRequest(req);
      return inTransactionSpan(async () => {
        for (let retry = 0; ; retry++) {
          try {
            return await begin(request);
          } catch (err) {
            if (!(err instanceof RetryLaterError) || retry >= overloadRetries) throw err;
            // Jittered so that every client refused together does not come back together.
            await new Promise((resolve) => setTimeout(resolve, err.retryAfterMs * (0.5 + Math.random() / 2)));
          }
        }
      });
    },

    async status(txId) {
      if (!isTxId(txId)) throw new TxmeshError('TXM_BAD_TX_ID', String(txId));
      const shard = shardOfTxId(txId)!;
      if (shard >= urls.length) throw new TxmeshError('TXM_WRONG_SHARD', `${txId} belongs to shard ${shard}, but only ${urls.length} coordinator URL(s) are configured`);
      try {
        return await call<TransactionStatus>(shard, transactionPath(txId));
      } catch (err) {
        if (err instanceof TxmeshError) throw err;
        throw unreachable(shard, err, 'ask again later');
      }
    },

    inDoubt(opts = {}) {
      const { olderThanMs } = opts;
      if (olderThanMs !== undefined && (!Number.isInteger(olderThanMs) || olderThanMs < 0)) {
        return Promise.reject(new TxmeshError('TXM_BAD_REQUEST', 'olderThanMs must be a non-negative integer of milliseconds'));
      }
      return everyShard<InDoubtList>(olderThanMs === undefined ? Paths.IN_DOUBT : `${Paths.IN_DOUBT}?olderThanMs=${olderThanMs}`);
    },

    services() {
      return everyShard<ServicesAnswer>(Paths.SERVICES);
    },

    async close() {
      await http.close();
    },
  };
}
