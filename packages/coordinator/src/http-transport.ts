/**
 * Branch batches over HTTP: one keep-alive undici Pool per sidecar origin, POST <sidecar>/txmesh/v1/batch.
 * Every failure leaves as a coded BranchCallError (see branch-errors.ts).
 */
import { Pool } from 'undici';
import { HeaderNames, Paths, PROTOCOL_VERSION, isErrorCode, validateBatchResponse, type BranchBatchResponse, type BranchItem, type ErrorCode } from '@txmesh/protocol';
import { BadAnswerError, DispatcherClosedError, SidecarHttpError, branchCallErrorOf } from './branch-errors.ts';
import type { BranchTransport } from './branch-transport.ts';

export interface HttpBranchTransportOptions {
  /** Keep-alive connections per sidecar. */
  connections?: number;
}

/** The catalogue code of an error body ({"error":{"code":…}}), if the text is one. */
function errorCodeIn(text: string): ErrorCode | undefined {
  try {
    const code = (JSON.parse(text) as { error?: { code?: unknown } } | null)?.error?.code;
    return isErrorCode(code) ? code : undefined;
  } catch {
    return undefined;
  }
}

export class HttpBranchTransport implements BranchTransport {
  readonly #pools = new Map<string, Pool>();
  readonly #connections: number;
  #closed = false;

  constructor(options: HttpBranchTransportOptions = {}) {
    this.#connections = options.connections ?? 16;
  }

  async send(sidecarUrl: string, items: BranchItem[], timeoutMs: number): Promise<BranchBatchResponse> {
    let statusCode: number;
    let text: string;
    try {
      const base = new URL(sidecarUrl);
      const pool = this.#pool(base.origin);
      const prefix = base.pathname.replace(/\/+$/, '');
      const response = await pool.request({
        path: `${prefix}${Paths.SIDECAR_BATCH}`,
        method: 'POST',
        headers: { 'content-type': 'application/json', [HeaderNames.PROTOCOL_VERSION]: String(PROTOCOL_VERSION) },
        body: JSON.stringify({ protocolVersion: PROTOCOL_VERSION, items }),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      statusCode = response.statusCode;
      text = await response.body.text();
    } catch (err) {
      throw branchCallErrorOf(err, sidecarUrl);
    }
    if (statusCode !== 200) throw new SidecarHttpError(sidecarUrl, statusCode, text, errorCodeIn(text));
    try {
      return validateBatchResponse(JSON.parse(text));
    } catch (err) {
      throw new BadAnswerError(`sidecar ${sidecarUrl} answered a batch that cannot be used: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy()));
  }

  #pool(origin: string): Pool {
    if (this.#closed) throw new DispatcherClosedError();
    let pool = this.#pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, { connections: this.#connections, pipelining: 1, keepAliveTimeout: 30_000 });
      this.#pools.set(origin, pool);
    }
    return pool;
  }
}
