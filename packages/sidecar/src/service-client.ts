/**
 * Talks to the service's participant routes. A batch call never throws: when the service cannot give a
 * usable answer every item becomes an `error` result, which tells the coordinator to retry it.
 */
import { BatchChannel, DEFAULT_MAX_ANSWER_BYTES, JsonHttpClient, describeAnswer, type JsonAnswer } from '@txmesh/client';
import {
  ItemStatus,
  Paths,
  PROTOCOL_VERSION,
  TxmeshError,
  isPlainObject,
  validateWaitEdges,
  type BranchBatchRequest,
  type BranchItem,
  type BranchItemResult,
  type WaitEdge,
} from '@txmesh/protocol';

export interface PreparedBranch {
  txId: string;
  preparedAt: number;
}

const STATUSES = new Set<string>(Object.values(ItemStatus));

function failAll(items: readonly BranchItem[], reason: string, message: string): BranchItemResult[] {
  return items.map((item) => ({ txId: item.txId, action: item.action, status: ItemStatus.ERROR, reason, message }));
}

/** Takes the service's result for one item, or an error result when it is missing or does not match. */
function resultFor(item: BranchItem, raw: unknown): BranchItemResult {
  if (!isPlainObject(raw) || raw.txId !== item.txId || raw.action !== item.action || typeof raw.status !== 'string' || !STATUSES.has(raw.status)) {
    return { txId: item.txId, action: item.action, status: ItemStatus.ERROR, reason: 'TXM_INTERNAL', message: 'the service answered this item with a malformed result' };
  }
  const result: BranchItemResult = { txId: item.txId, action: item.action, status: raw.status as ItemStatus };
  if (typeof raw.reason === 'string') result.reason = raw.reason;
  if (typeof raw.message === 'string') result.message = raw.message;
  return result;
}

export interface ServiceObserver {
  /** Called as a call starts; the returned function when it ends. */
  requestStarted(): () => void;
  serviceUsage(usage: Record<string, unknown>): void;
  /** The wait-for edges a batch answer carried (services in deadlock mode detect send them). */
  serviceWaits?(edges: WaitEdge[]): void;
}

/** Edges from the service, or undefined when it sent none or malformed ones. */
function edgesOf(value: unknown): WaitEdge[] | undefined {
  if (value === undefined) return undefined;
  try {
    return validateWaitEdges(value);
  } catch {
    return undefined;
  }
}

export class ServiceClient {
  readonly #http: JsonHttpClient;
  readonly #serviceUrl: string;
  readonly #observer: ServiceObserver | undefined;
  readonly #timeoutMs: number;
  /** Batches go over the batch channel while the service takes it (client BatchChannel), else over HTTP. */
  readonly #channel: BatchChannel | undefined;
  /** Calls made to the service (GET /txmesh/v1/stats; the benchmark's requests per transaction). */
  requests = 0;
  /** Of those, batch calls answered over the batch channel. */
  channelCalls = 0;

  /**
   * `observer` sees every call to the service (its latency, for the resource report) and the usage figures
   * the participant SDK attaches to its batch answers.
   */
  /**
   * `authorization`: this sidecar's proof to the service's participant routes, when credentials are on.
   * `batchChannel: false` sends every batch over HTTP (TXMESH_BATCH_CHANNEL=off).
   */
  constructor(serviceUrl: string, timeoutMs: number, observer?: ServiceObserver, authorization?: string, options: { batchChannel?: boolean } = {}) {
    this.#serviceUrl = serviceUrl;
    this.#observer = observer;
    this.#timeoutMs = timeoutMs;
    this.#http = new JsonHttpClient({ timeoutMs, connections: 16, headers: authorization === undefined ? {} : { authorization } });
    // An https service keeps HTTPS: the channel is for a service next to its sidecar, over loopback.
    const channel = options.batchChannel !== false && new URL(serviceUrl).protocol === 'http:';
    this.#channel = channel ? new BatchChannel({ url: serviceUrl, path: Paths.PARTICIPANT_CHANNEL, authorization, maxAnswerBytes: DEFAULT_MAX_ANSWER_BYTES }) : undefined;
  }

  /** Resolves once an upgrade to the service under way has ended: true when the batch channel is open (tests). */
  async channelSettled(): Promise<boolean> {
    return (await this.#channel?.settled()) ?? false;
  }

  /** Sends the whole batch in one call; the results are in the order of `items`. */
  async sendBatch(items: readonly BranchItem[]): Promise<BranchItemResult[]> {
    if (items.length === 0) return [];
    const request: BranchBatchRequest = { protocolVersion: PROTOCOL_VERSION, items: [...items] };
    let answer: JsonAnswer;
    this.requests += 1;
    const ended = this.#observer?.requestStarted();
    try {
      const overChannel = this.#channel === undefined ? undefined : await this.#channel.call(JSON.stringify(request), this.#timeoutMs);
      if (overChannel !== undefined) this.channelCalls += 1;
      answer = overChannel ?? (await this.#http.request(this.#serviceUrl, Paths.PARTICIPANT_BATCH, { body: request }));
    } catch (err) {
      return failAll(items, 'TXM_SERVICE_UNREACHABLE', `the service did not answer: ${(err as Error).message}`);
    } finally {
      ended?.();
    }
    if (isPlainObject(answer.body) && isPlainObject(answer.body.usage)) this.#observer?.serviceUsage(answer.body.usage);
    const edges = isPlainObject(answer.body) ? edgesOf(answer.body.waits) : undefined;
    if (edges) this.#observer?.serviceWaits?.(edges);
    if (answer.status < 200 || answer.status >= 300) {
      return failAll(items, TxmeshError.fromBody(answer.body)?.code ?? 'TXM_SERVICE_UNREACHABLE', `the service answered ${describeAnswer(answer)}`);
    }
    const results = isPlainObject(answer.body) ? answer.body.results : undefined;
    if (!Array.isArray(results) || results.length !== items.length) {
      return failAll(items, 'TXM_INTERNAL', 'the service answered a batch without one result per item');
    }
    return items.map((item, i) => resultFor(item, results[i]));
  }

  /**
   * Asks the service for its usage figures when no batch answer brought them lately (an idle service).
   * Never throws: a service without the route (an older SDK) simply reports nothing.
   */
  async refreshUsage(): Promise<void> {
    try {
      const answer = await this.#http.request(this.#serviceUrl, Paths.PARTICIPANT_USAGE);
      if (answer.status === 200 && isPlainObject(answer.body)) this.#observer?.serviceUsage(answer.body);
    } catch {
      // The next heartbeat tries again.
    }
  }

  /** The service's wait-for edges right now; undefined when it cannot say (an older SDK, a failure). */
  async waits(): Promise<WaitEdge[] | undefined> {
    try {
      const answer = await this.#http.request(this.#serviceUrl, Paths.PARTICIPANT_WAITS);
      return answer.status === 200 && isPlainObject(answer.body) ? edgesOf(answer.body.edges) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Branches the service holds prepared and undecided. Throws when the service cannot say. */
  async listPrepared(): Promise<PreparedBranch[]> {
    this.requests += 1;
    const answer = await this.#http.request(this.#serviceUrl, Paths.PARTICIPANT_PREPARED);
    if (answer.status !== 200 || !isPlainObject(answer.body) || !Array.isArray(answer.body.prepared)) {
      throw new Error(`the service answered its prepared list with ${describeAnswer(answer)}, not a prepared list`);
    }
    const branches: PreparedBranch[] = [];
    for (const raw of answer.body.prepared) {
      if (isPlainObject(raw) && typeof raw.txId === 'string' && typeof raw.preparedAt === 'number') {
        branches.push({ txId: raw.txId, preparedAt: raw.preparedAt });
      }
    }
    return branches;
  }

  /** Aborts calls in flight: their items become error results, which the coordinator retries. */
  async close(): Promise<void> {
    this.#channel?.destroy();
    await this.#http.destroy();
  }
}
