/**
 * Why a call to a sidecar failed, as coded errors: each class stands for one catalogue reason, and the
 * raw text (addresses, ports, exception messages) stays in the message, which becomes `details`.
 * Whatever a transport throws goes through branchCallErrorOf() once, so callers compare `reason`,
 * never an error's name or its text.
 */
import { Reason, TxmeshError, type ErrorCode } from '@txmesh/protocol';

/** What a branch failure may say: a catalogue reason or an error code a sidecar answered with. */
export type BranchFailureReason = Reason | ErrorCode;

export class BranchCallError extends Error {
  readonly reason: BranchFailureReason;

  constructor(reason: BranchFailureReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BranchCallError';
    this.reason = reason;
  }
}

/** No answer within the time the caller allowed. */
export class TransportTimeoutError extends BranchCallError {
  constructor(sidecarUrl: string, timeoutMs: number, options?: { cause?: unknown }) {
    super(Reason.TIMEOUT, `no answer from ${sidecarUrl} within ${timeoutMs} ms`, options);
    this.name = 'TransportTimeoutError';
  }
}

/** Connection refused or reset, name not resolved, no route, or no address known at all. */
export class SidecarUnreachableError extends BranchCallError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(Reason.UNREACHABLE, message, options);
    this.name = 'SidecarUnreachableError';
  }
}

/**
 * The sidecar answered with an HTTP error. When its body is a catalogue error (TXM_SHUTTING_DOWN …), that
 * code is the reason and its details are kept; otherwise SIDECAR_ERROR, and the body is not repeated: the
 * message reaches the client as a vote's details, and a registered address may point at anything (a body
 * read back from an internal page would make the coordinator a request-forgery relay).
 */
export class SidecarHttpError extends BranchCallError {
  readonly statusCode: number;

  constructor(sidecarUrl: string, statusCode: number, answer: { bytes: number; error?: TxmeshError | undefined }) {
    const { error } = answer;
    const said = error
      ? `${error.code}${error.details === undefined ? '' : `: ${error.details.slice(0, 300)}`}`
      : `a body that is not a txmesh error (${answer.bytes} bytes, not shown)`;
    super(error?.code ?? Reason.SIDECAR_ERROR, `sidecar ${sidecarUrl} answered HTTP ${statusCode}: ${said}`);
    this.name = 'SidecarHttpError';
    this.statusCode = statusCode;
  }
}

/** The answer could not be read as the batch result it should be. */
export class BadAnswerError extends BranchCallError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(Reason.BAD_ANSWER, message, options);
    this.name = 'BadAnswerError';
  }
}

/** This coordinator is closing; nothing more is sent. */
export class DispatcherClosedError extends BranchCallError {
  constructor() {
    super('TXM_SHUTTING_DOWN', 'the dispatcher is closed: this coordinator is shutting down and sends nothing more');
    this.name = 'DispatcherClosedError';
  }
}

/** Node and undici error codes of a connection that could not be made or was lost. */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
]);

/** ... and of one that gave no answer in time. */
const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_SOCKET_TIMEOUT']);

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The coded form of anything a transport threw. Coded errors pass through; a TxmeshError keeps its code;
 * system and undici errors are told apart by their `code` (also on their `cause`, as fetch wraps them);
 * an AbortSignal timeout is a TIMEOUT; unparsable JSON is a BAD_ANSWER; anything else is an ERROR.
 */
export function branchCallErrorOf(err: unknown, sidecarUrl?: string): BranchCallError {
  if (err instanceof BranchCallError) return err;
  const where = sidecarUrl === undefined ? '' : `${sidecarUrl}: `;
  if (err instanceof TxmeshError) return new BranchCallError(err.code, `${where}${err.code}${err.details === undefined ? '' : ` (${err.details})`}`, { cause: err });
  if (err instanceof DOMException && err.code === DOMException.TIMEOUT_ERR) return new BranchCallError(Reason.TIMEOUT, `${where}${err.message}`, { cause: err });
  if (err instanceof SyntaxError) return new BadAnswerError(`${where}the answer is not JSON: ${err.message}`, { cause: err });
  for (const candidate of [err, (err as { cause?: unknown } | null | undefined)?.cause]) {
    const code = codeOf(candidate);
    if (code === undefined) continue;
    if (UNREACHABLE_CODES.has(code)) return new SidecarUnreachableError(`${where}${messageOf(candidate)}`, { cause: err });
    if (TIMEOUT_CODES.has(code)) return new BranchCallError(Reason.TIMEOUT, `${where}${messageOf(candidate)}`, { cause: err });
  }
  return new BranchCallError(Reason.ERROR, `${where}${messageOf(err)}`, { cause: err });
}
