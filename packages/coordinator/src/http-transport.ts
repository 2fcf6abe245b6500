/**
 * Branch batches over HTTP: POST <sidecar>/txmesh/v1/batch through the one JSON client (a keep-alive Pool
 * per sidecar origin, a time bound per call, a bound on the answer). Every failure leaves as a coded
 * BranchCallError (see branch-errors.ts).
 */
import { CallFailure, HttpCallError, JsonHttpClient, withTraceHeaders } from '@txmesh/client';
import {
  CallerRole,
  HeaderNames,
  Paths,
  PROTOCOL_VERSION,
  TxmeshError,
  authorizationHeader,
  deriveServiceKey,
  validateBatchResponse,
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

export interface HttpBranchTransportOptions {
  /** Keep-alive connections per sidecar. */
  connections?: number;
  /** The cluster secret that signs: each batch then proves to the sidecar that a coordinator sent it. */
  secret?: string;
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

export class HttpBranchTransport implements BranchTransport {
  readonly #http: JsonHttpClient;
  readonly #secret: string | undefined;
  /** Authorization header per service: two HMACs saved per batch. Bounded by the registered services. */
  readonly #headers = new Map<string, string>();

  constructor(options: HttpBranchTransportOptions = {}) {
    this.#secret = options.secret;
    this.#http = new JsonHttpClient({
      timeoutMs: FALLBACK_TIMEOUT_MS,
      connections: options.connections ?? 16,
      headers: { [HeaderNames.PROTOCOL_VERSION]: String(PROTOCOL_VERSION) },
    });
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
    let answer;
    try {
      answer = await this.#http.request(sidecarUrl, Paths.SIDECAR_BATCH, {
        body: { protocolVersion: PROTOCOL_VERSION, items },
        timeoutMs,
        // One sidecar serves one service: every item of a batch names it. The active trace context (the
        // batch span, when tracing) goes in the traceparent header.
        headers: withTraceHeaders(this.#authorization(items[0]?.service)),
      });
    } catch (err) {
      throw err instanceof HttpCallError ? callFailureOf(err, sidecarUrl, timeoutMs) : branchCallErrorOf(err, sidecarUrl);
    }
    if (answer.status !== 200) throw new SidecarHttpError(sidecarUrl, answer.status, { bytes: Buffer.byteLength(answer.text), error: TxmeshError.fromBody(answer.body) });
    try {
      return validateBatchResponse(answer.body);
    } catch (err) {
      throw new BadAnswerError(`sidecar ${sidecarUrl} answered a batch that cannot be used: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    await this.#http.destroy();
  }
}
