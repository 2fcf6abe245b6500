/**
 * Branch batches over HTTP: one keep-alive undici Pool per sidecar origin, POST <sidecar>/txmesh/v1/batch.
 */
import { Pool } from 'undici';
import { HeaderNames, Paths, PROTOCOL_VERSION, type BranchBatchResponse, type BranchItem } from '@txmesh/protocol';
import type { BranchTransport } from './branch-transport.ts';

export interface HttpBranchTransportOptions {
  /** Keep-alive connections per sidecar. */
  connections?: number;
}

export class SidecarHttpError extends Error {
  readonly statusCode: number;
  constructor(sidecarUrl: string, statusCode: number, body: string) {
    super(`sidecar ${sidecarUrl} answered HTTP ${statusCode}: ${body.slice(0, 300)}`);
    this.name = 'SidecarHttpError';
    this.statusCode = statusCode;
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
    const text = await response.body.text();
    if (response.statusCode !== 200) throw new SidecarHttpError(sidecarUrl, response.statusCode, text);
    const parsed = JSON.parse(text) as Partial<BranchBatchResponse> | null;
    if (!parsed || !Array.isArray(parsed.results)) throw new Error(`sidecar ${sidecarUrl} answered a batch without results`);
    if (parsed.protocolVersion !== PROTOCOL_VERSION) {
      throw new Error(`sidecar ${sidecarUrl} speaks protocol ${String(parsed.protocolVersion)}, expected ${PROTOCOL_VERSION}`);
    }
    return parsed as BranchBatchResponse;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((p) => p.destroy()));
  }

  #pool(origin: string): Pool {
    if (this.#closed) throw new Error('transport is closed');
    let pool = this.#pools.get(origin);
    if (!pool) {
      pool = new Pool(origin, { connections: this.#connections, pipelining: 1, keepAliveTimeout: 30_000 });
      this.#pools.set(origin, pool);
    }
    return pool;
  }
}
