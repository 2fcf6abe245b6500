/** Talks to the coordinator shards: registration heartbeats and decision look-ups, one keep-alive Pool per shard. */
import { Pool } from 'undici';
import { Decision, Paths, decisionPath, type RegisterServiceRequest, type WaitReport } from '@txmesh/protocol';
import { errorCodeOf, isPlainObject, requestJson } from './http-json.ts';

const DECISIONS = new Set<string>(Object.values(Decision));

export class CoordinatorClient {
  readonly #pools: Pool[];
  /** Calls made to the shards: registrations, heartbeats and decision look-ups. */
  requests = 0;

  readonly #timeoutMs: number;
  constructor(coordinatorUrls: readonly string[], timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
    this.#pools = coordinatorUrls.map((url) => new Pool(url, { connections: 4, keepAliveTimeout: 30_000 }));
  }

  get shards(): number {
    return this.#pools.length;
  }

  /** Registers (or re-registers, as a heartbeat) with one shard. Throws on any failure. */
  async register(shard: number, request: RegisterServiceRequest): Promise<void> {
    this.requests += 1;
    const answer = await requestJson(this.#pool(shard), 'POST', Paths.SERVICES, request, this.#timeoutMs);
    if (answer.status < 200 || answer.status >= 300) {
      throw new Error(`shard ${shard} refused the registration with HTTP ${answer.status} ${errorCodeOf(answer.body) ?? ''}`.trim());
    }
  }

  /** Sends the service's wait-for edges to one shard (deadlock detection). Throws on any failure. */
  async reportWaits(shard: number, report: WaitReport): Promise<void> {
    this.requests += 1;
    const answer = await requestJson(this.#pool(shard), 'POST', Paths.WAIT_FOR, report, this.#timeoutMs);
    if (answer.status < 200 || answer.status >= 300) {
      throw new Error(`shard ${shard} refused the wait report with HTTP ${answer.status} ${errorCodeOf(answer.body) ?? ''}`.trim());
    }
  }

  /**
   * How the owning shard decided `txId`. Throws when the shard cannot say (unreachable, wrong shard, odd
   * answer), so the caller leaves the branch for a later round.
   */
  async decision(shard: number, txId: string): Promise<Decision> {
    this.requests += 1;
    const answer = await requestJson(this.#pool(shard), 'GET', decisionPath(txId), undefined, this.#timeoutMs);
    // Presumed abort: the deciding shard knowing nothing of the transaction means it did not commit.
    if (answer.status === 404 && errorCodeOf(answer.body) === 'TXM_TX_NOT_FOUND') return Decision.ABORT;
    if (answer.status !== 200 || !isPlainObject(answer.body) || typeof answer.body.decision !== 'string' || !DECISIONS.has(answer.body.decision)) {
      throw new Error(`shard ${shard} answered the decision of ${txId} with HTTP ${answer.status} ${errorCodeOf(answer.body) ?? ''}`.trim());
    }
    return answer.body.decision as Decision;
  }

  #pool(shard: number): Pool {
    const pool = this.#pools[shard];
    if (!pool) throw new Error(`no coordinator URL for shard ${shard} (${this.#pools.length} configured)`);
    return pool;
  }

  async close(): Promise<void> {
    await Promise.all(this.#pools.map((pool) => pool.destroy()));
  }
}
