/**
 * Branch batches to sidecars: over each sidecar's batch channel (sidecar-channels.ts: one upgraded connection, a
 * frame per batch) while it takes one, else as POST <sidecar>/txmesh/v1/batch through the one JSON client (a
 * keep-alive Pool per sidecar origin). Either way a time bound per call and a bound on the answer, the same
 * body, and the same answer handling. Every failure leaves as a coded BranchCallError (see branch-errors.ts).
 */
import { CallFailure, HttpCallError, JsonHttpClient, withTraceHeaders, type JsonAnswer } from '@txmesh/client';
import {
  CallerRole,
  HeaderNames,
  Paths,
  PROTOCOL_VERSION,
  TxmeshError,
  authorizationHeader,
  deriveServiceKey,
  validateBatchResponse,
  validateCompactBatchResponse,
  validTraceCarrier,
  type BatchChannelRequest,
  type BranchBatchResponse,
  type BranchItem,
} from '@txmesh/protocol';
import {
  BadAnswerError,
  DispatcherClosedError,
  SidecarHttpError,
  SidecarUnreachableError,
  TransportTimeoutError,
  branchCallErrorOf,
  type BranchCallError,
} from './branch-errors.ts';
import type { BranchTransport } from './branch-transport.ts';
import { SidecarChannels } from './sidecar-channels.ts';

export interface HttpBranchTransportOptions {
  /** Keep-alive connections per sidecar. */
  connections?: number;
  /** The cluster secret that signs: each batch then proves to the sidecar that a coordinator sent it. */
  secret?: string;
  /** false (TXMESH_COORDINATOR_CHANNEL=off): every batch as an HTTP request. Default true. */
  channel?: boolean;
  /** How long a sidecar that refused the channel gets its batches over HTTP before it is asked again. */
  retryRefusedMs?: number;
}

const MAX_CACHED_HEADERS = 10_000;

/** Every call gives its own bound (the attempt's timeout); this one is never used on its own. */
const FALLBACK_TIMEOUT_MS = 30_000;

/** The coded branch failure for a call that got no usable answer. */
function callFailureOf(err: HttpCallError, sidecarUrl: string, timeoutMs: number): BranchCallError {
  switch (err.failure) {
    case CallFailure.TIMEOUT:
      return new TransportTimeoutError(sidecarUrl, timeoutMs, { cause: err });
    case CallFailure.UNREACHABLE:
      return new SidecarUnreachableError(err.message, { cause: err });
    case CallFailure.ANSWER_TOO_LARGE:
      return new BadAnswerError(err.message, { cause: err });
    case CallFailure.CLOSED:
      return new DispatcherClosedError();
  }
}

/**
 * A batch as a channel frame's body: the request's, with the batch span's context that HTTP puts in a header, asking
 * for compact results (a plain ok as COMPACT_OK; a sidecar that does not know the field answers in full).
 */
function channelBody(items: BranchItem[], headers: Record<string, string>): string {
  const request: BatchChannelRequest = { protocolVersion: PROTOCOL_VERSION, items, compactResults: true };
  const trace = validTraceCarrier(headers);
  if (trace !== undefined) request.trace = trace;
  return JSON.stringify(request);
}

export class HttpBranchTransport implements BranchTransport {
  readonly #http: JsonHttpClient;
  readonly #secret: string | undefined;
  /** Authorization header per service: two HMACs saved per batch. Bounded by the registered services. */
  readonly #headers = new Map<string, string>();
  readonly #channels: SidecarChannels | undefined;

  constructor(options: HttpBranchTransportOptions = {}) {
    this.#secret = options.secret;
    this.#channels =
      options.channel === false
        ? undefined
        : new SidecarChannels((service) => this.#authorization(service).authorization, options.retryRefusedMs === undefined ? {} : { retryRefusedMs: options.retryRefusedMs });
    this.#http = new JsonHttpClient({
      timeoutMs: FALLBACK_TIMEOUT_MS,
      connections: options.connections ?? 16,
      headers: { [HeaderNames.PROTOCOL_VERSION]: String(PROTOCOL_VERSION) },
    });
  }

  /** Batches answered over a batch channel, and what the channels are (tests, stats). */
  channelStats(): { calls: number; open: number; refusals: number } {
    return { calls: this.#channels?.calls ?? 0, ...(this.#channels?.stats() ?? { open: 0, refusals: 0 }) };
  }

  #authorization(service: string | undefined): Record<string, string> {
    if (this.#secret === undefined || service === undefined) return {};
    let header = this.#headers.get(service);
    if (header === undefined) {
      if (this.#headers.size >= MAX_CACHED_HEADERS) this.#headers.clear();
      header = authorizationHeader(CallerRole.COORDINATOR, service, deriveServiceKey(this.#secret, service));
      this.#headers.set(service, header);
    }
    return { authorization: header };
  }

  async send(sidecarUrl: string, items: BranchItem[], timeoutMs: number): Promise<BranchBatchResponse> {
    // One sidecar serves one service: every item of a batch names it. The active trace context (the batch
    // span, when tracing) goes in the traceparent header, or over the channel in the body's `trace`.
    const service = items[0]?.service;
    const headers = withTraceHeaders(this.#authorization(service));
    let answer: JsonAnswer | undefined;
    let overChannel = false;
    try {
      if (this.#channels !== undefined) answer = await this.#channels.call(sidecarUrl, service, () => channelBody(items, headers), timeoutMs);
      overChannel = answer !== undefined;
      answer ??= await this.#http.request(sidecarUrl, Paths.SIDECAR_BATCH, { body: { protocolVersion: PROTOCOL_VERSION, items }, timeoutMs, headers });
    } catch (err) {
      throw err instanceof HttpCallError ? callFailureOf(err, sidecarUrl, timeoutMs) : branchCallErrorOf(err, sidecarUrl);
    }
    if (answer.status !== 200) throw new SidecarHttpError(sidecarUrl, answer.status, { bytes: Buffer.byteLength(answer.text), error: TxmeshError.fromBody(answer.body) });
    try {
      return overChannel ? validateCompactBatchResponse(answer.body, items) : validateBatchResponse(answer.body);
    } catch (err) {
      throw new BadAnswerError(`sidecar ${sidecarUrl} answered a batch that cannot be used: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    this.#channels?.destroy();
    await this.#http.destroy();
  }
}
