/** Talks to the coordinator shards: registration heartbeats and decision look-ups, over keep-alive connections. */
import { JsonHttpClient, describeAnswer } from '@txmesh/client';
import { Decision, Paths, TxmeshError, decisionPath, isPlainObject, type RegisterServiceRequest, type WaitReport } from '@txmesh/protocol';

const DECISIONS = new Set<string>(Object.values(Decision));

export class CoordinatorClient {
  readonly #http: JsonHttpClient;
  readonly #urls: readonly string[];

  /** `authorization`: this sidecar's proof to the shards, when credentials are on. */
  constructor(coordinatorUrls: readonly string[], timeoutMs: number, authorization?: string) {
    this.#urls = coordinatorUrls;
    this.#http = new JsonHttpClient({ timeoutMs, connections: 4, headers: authorization === undefined ? {} : { authorization } });
  }

  get shards(): number {
    return this.#urls.length;
  }

  /** Calls made to the shards: registrations, heartbeats and decision look-ups. */
  get requests(): number {
    return this.#http.requests;
  }

  url(shard: number): string {
    const url = this.#urls[shard];
    if (url === undefined) throw new RangeError(`no coordinator URL for shard ${shard} (${this.#urls.length} configured)`);
    return url;
  }

  /**
   * Registers (or re-registers, as a heartbeat) with one shard. Throws on any failure: the shard's refusal
   * as a TxmeshError (e.g. TXM_WRONG_SHARD when the URLs are not in shard order), no answer as an HttpCallError.
   */
  async register(shard: number, request: RegisterServiceRequest): Promise<void> {
    const answer = await this.#http.request(this.url(shard), Paths.SERVICES, { body: request });
    if (answer.status < 200 || answer.status >= 300) {
      throw TxmeshError.fromBody(answer.body) ?? new Error(`shard ${shard} answered the registration with ${describeAnswer(answer)}`);
    }
  }

  /** Sends the service's wait-for edges to one shard (deadlock detection). Throws on any failure. */
  async reportWaits(shard: number, report: WaitReport): Promise<void> {
    const answer = await this.#http.request(this.url(shard), Paths.WAIT_FOR, { body: report });
    if (answer.status < 200 || answer.status >= 300) {
      throw TxmeshError.fromBody(answer.body) ?? new Error(`shard ${shard} answered the wait report with ${describeAnswer(answer)}`);
    }
  }

  /**
   * How the owning shard decided `txId`. Throws when the shard cannot say (unreachable, wrong shard, odd
   * answer), so the caller leaves the branch for a later round.
   */
  async decision(shard: number, txId: string): Promise<Decision> {
    const answer = await this.#http.request(this.url(shard), decisionPath(txId));
    const refusal = TxmeshError.fromBody(answer.body);
    // Presumed abort: the deciding shard knowing nothing of the transaction means it did not commit.
    if (answer.status === 404 && refusal?.code === 'TXM_TX_NOT_FOUND') return Decision.ABORT;
    if (answer.status !== 200 || !isPlainObject(answer.body) || typeof answer.body.decision !== 'string' || !DECISIONS.has(answer.body.decision)) {
      throw refusal ?? new Error(`shard ${shard} answered the decision of ${txId} with ${describeAnswer(answer)}`);
    }
    return answer.body.decision as Decision;
  }

  /** Aborts calls in flight: a closing sidecar does not wait for a shard that does not answer. */
  async close(): Promise<void> {
    await this.#http.destroy();
  }
}
