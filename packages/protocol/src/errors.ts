/**
 * The one catalogue of txmesh error codes. Every refusal carries a code from here, the HTTP status it
 * travels with, and a sentence a person can act on. docs/design.md lists them; a test checks it does.
 */

export interface ErrorSpec {
  readonly status: number;
  readonly message: string;
}

export const ErrorCodes = {
  TXM_BAD_REQUEST: { status: 400, message: 'The request body is not valid: fix the field named in the details and send it again.' },
  TXM_BODY_TOO_LARGE: { status: 413, message: 'The request body is larger than this server accepts: send fewer participants or operations per request.' },
  TXM_HEADERS_TOO_LARGE: { status: 431, message: 'The URL or headers are larger than this server accepts (16 KiB): shorten the URL and send data in the body.' },
  TXM_REQUEST_TIMEOUT: { status: 408, message: 'The request did not arrive completely in time: send it again over a working connection.' },
  TXM_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Send the body as JSON with Content-Type: application/json.' },
  TXM_NO_PARTICIPANTS: { status: 400, message: 'A transaction needs at least one participant: list the services and their operations.' },
  TXM_DUPLICATE_PARTICIPANT: { status: 400, message: 'A service appears twice in participants: merge its operations into one entry.' },
  TXM_TOO_MANY_PARTICIPANTS: { status: 400, message: 'The transaction lists more participants than this coordinator allows: split it or raise maxParticipants.' },
  TXM_UNKNOWN_SERVICE: { status: 422, message: 'A participant names a service that has not registered: start its sidecar or correct the name.' },
  TXM_BAD_TIMEOUT: { status: 400, message: 'timeoutMs and prepareTimeoutMs must be integers within the allowed range (see the details).' },
  TXM_IDEMPOTENCY_CONFLICT: { status: 409, message: 'This idempotencyKey was already used for a different request body: use a new key for a new transaction.' },
  TXM_TX_NOT_FOUND: { status: 404, message: 'No transaction with this id is known to this shard; under presumed abort an unknown transaction did not commit.' },
  TXM_BAD_TX_ID: { status: 400, message: 'The transaction id is malformed: ids look like "<shard>-<time>-<random>".' },
  TXM_WRONG_SHARD: { status: 421, message: 'This transaction id or idempotency key belongs to another shard: send the request to the shard that owns it (the client SDK routes it for you).' },
  TXM_UNAUTHENTICATED: { status: 401, message: 'This route needs a txmesh credential: send Authorization: Bearer <role>:<name>:<proof> made from the key issued to you (see the Security section of README.md).' },
  TXM_FORBIDDEN: { status: 403, message: 'Your credential is valid but does not allow this call (another service\'s name, or a route for another role): use the credential issued for this purpose.' },
  TXM_NOT_FOUND: { status: 404, message: 'No such route: see the API section of README.md.' },
  TXM_RESOURCE_NOT_FOUND: { status: 404, message: 'The item named in the path does not exist: check the id in the details.' },
  TXM_OVERLOADED: { status: 429, message: 'This server, or a service this transaction needs, is saturated, so the request was refused before anything ran: retry after the Retry-After seconds.' },
  TXM_SHUTTING_DOWN: { status: 503, message: 'This process is shutting down: retry against another shard or after restart.' },
  TXM_NOT_READY: { status: 503, message: 'This process is running but not ready yet: the details say what it waits for; retry shortly.' },
  TXM_STALLED: { status: 503, message: 'This process\'s event loop has not turned for longer than its probe allows: it is stuck or starved of CPU; if it lasts, restart it (a Kubernetes liveness probe does).' },
  TXM_UNKNOWN_OPERATION: { status: 400, message: 'The participant has no handler for this operation name: check the op against the service documentation.' },
  TXM_PROTOCOL_VERSION: { status: 400, message: 'The peer speaks another txmesh protocol version: upgrade the older component.' },
  TXM_SERVICE_UNREACHABLE: { status: 502, message: 'The service behind this sidecar did not answer: check that it is running and that its URL is right.' },
  TXM_COMMIT_WITHOUT_PREPARE: { status: 409, message: "Commit arrived for a branch that never prepared here (its database was lost or replaced, or the branch was never sent a prepare): nothing was applied; restore the participant's database, or settle the branch by hand (it is listed by GET /v1/in-doubt)." },
  TXM_COORDINATOR_UNREACHABLE: { status: 503, message: 'The coordinator did not answer, so the outcome is unknown: resend with the same idempotencyKey or poll the transaction status.' },
  TXM_OUTCOME_UNKNOWN: { status: 503, message: 'The coordinator could not make its decision durable and stops; its log settles the outcome when it restarts: poll the transaction or resend with the same idempotencyKey.' },
  TXM_BAD_INJECTION: { status: 400, message: 'The pod asks for a txmesh sidecar (txmesh.io/inject: "true") but its annotations are not usable: set txmesh.io/service to the service name and txmesh.io/app-port to the port the app listens on.' },
  TXM_PG_NO_PREPARED_TRANSACTIONS: { status: 503, message: "PostgreSQL's max_prepared_transactions is 0, so native two-phase commit cannot PREPARE TRANSACTION: set it above the number of branches prepared at once (e.g. 100) in postgresql.conf and restart PostgreSQL, or use mode 'tentative'." },
  TXM_PG_MISSING: { status: 503, message: 'PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found: run scripts/test-tools/postgresql.sh (apt-get install postgresql-15) or name their folder with --pg-bin.' },
  TXM_DECISION_UNKNOWN: { status: 409, message: 'This shard\'s decision log began after this transaction did, so it cannot presume abort: the shard runs on new or wrong data; restore its data directory, or settle the branch by hand.' },
  TXM_INTERNAL: { status: 500, message: 'An unexpected error happened; the transaction state is unchanged. Check the server log for the details.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ErrorCodes;

/** The JSON body of every error answer. */
export interface ErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    /** Which field or value was wrong, when known. */
    details?: string;
  };
}

export class TxmeshError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: string | undefined;

  constructor(code: ErrorCode, details?: string) {
    const spec = ErrorCodes[code];
    super(details ? `${spec.message} (${details})` : spec.message);
    this.name = 'TxmeshError';
    this.code = code;
    this.status = spec.status;
    this.details = details;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { error: { code: this.code, message: ErrorCodes[this.code].message } };
    if (this.details !== undefined) body.error.details = this.details;
    return body;
  }

  /**
   * The TxmeshError an error body carries, the reverse of toBody. Undefined when the body is not one of
   * ours (a proxy's page, a code this version does not know): the caller then reports what it saw.
   */
  static fromBody(body: unknown): TxmeshError | undefined {
    if (typeof body !== 'object' || body === null) return undefined;
    const error = (body as { error?: unknown }).error;
    if (typeof error !== 'object' || error === null) return undefined;
    const { code, details } = error as { code?: unknown; details?: unknown };
    if (!isErrorCode(code)) return undefined;
    return new TxmeshError(code, typeof details === 'string' ? details : undefined);
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ErrorCodes, value);
}
