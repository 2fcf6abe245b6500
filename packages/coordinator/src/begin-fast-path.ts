/**
 * POST /v1/transactions on plain node:http, ahead of fastify. The begin route is nearly every request a busy
 * shard serves, and fastify's request pipeline (request and reply objects, child logger, hooks, content-type
 * parser, serialisation hooks) was about 7 % of a busy shard's time (docs/benchmarks.md). This path takes only the
 * well-formed shape: a JSON body with a Content-Length within the limit and, when credentials are on, a client's
 * credential that verifies. Everything else (a closing shard, another content type, a chunked or oversized body,
 * a caller that is not a proven client) goes to fastify's route, whose answers it therefore keeps; what this
 * path answers itself (JSON that does not parse or holds a prototype key, and what the manager refuses) is
 * answered as fastify would, which test/begin-fast-path.test.ts checks request by request.
 */
import { channel } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CallerRole, Paths, TxmeshError, sendTxmeshError, toTxmeshError, verifyWithSecrets, type TransactionResult } from '@txmesh/protocol';
import type { TransactionManager } from './transaction-manager.ts';
import { requestContext } from './transaction-spans.ts';

export interface BeginFastPathOptions {
  manager: TransactionManager;
  /** The cluster secrets when credentials are on: only a proven client's request is taken. */
  secrets?: readonly string[];
  bodyLimit: number;
  /** False once the shard is closing: fastify's hook then answers TXM_SHUTTING_DOWN. */
  isOpen(): boolean;
  onDecided?: (result: TransactionResult) => void;
  log: { error(bindings: object, message: string): void };
}

const JSON_TYPES = new Set(['application/json', 'application/json; charset=utf-8']);
const DIGITS = /^[1-9]\d{0,9}$/;
/** Keys that would reach an object's prototype if the body were ever merged into one (escaped or not). */
const PROTOTYPE_HINT = /__proto__|constructor|\\u/;
/** fastify's sentence for a body that does not parse (FST_ERR_CTP_INVALID_JSON_BODY), kept so both paths answer alike. */
const NOT_JSON = "Body is not valid JSON but content-type is set to 'application/json'";

/** Published for each request this path takes (tests tell by it which path answered). Nothing subscribes in production. */
export const beginFastPathChannel = channel('txmesh:coordinator:begin-fast-path');

export class BeginFastPath {
  readonly #options: BeginFastPathOptions;

  constructor(options: BeginFastPathOptions) {
    this.#options = options;
  }

  /** Serves the request and returns true, or returns false having touched nothing (fastify serves it). */
  take(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST' || req.url !== Paths.TRANSACTIONS || !this.#options.isOpen()) return false;
    const headers = req.headers;
    const type = headers['content-type'];
    if (type === undefined || !JSON_TYPES.has(type.toLowerCase()) || headers['transfer-encoding'] !== undefined) return false;
    const length = headers['content-length'];
    if (length === undefined || !DIGITS.test(length) || Number(length) > this.#options.bodyLimit) return false;
    const secrets = this.#options.secrets;
    if (secrets !== undefined && verifyWithSecrets(headers.authorization, secrets)?.role !== CallerRole.CLIENT) return false;
    if (beginFastPathChannel.hasSubscribers) beginFastPathChannel.publish(req);
    this.#read(req, res, Number(length));
    return true;
  }

  #read(req: IncomingMessage, res: ServerResponse, length: number): void {
    // node:http delivers exactly Content-Length bytes or reports the connection broken: no size check needed here.
    let first: Buffer | undefined;
    let chunks: Buffer[] | undefined;
    req.on('data', (chunk: Buffer) => {
      if (first === undefined) first = chunk;
      else (chunks ??= [first]).push(chunk);
    });
    req.on('end', () => {
      const body = chunks === undefined ? first : Buffer.concat(chunks, length);
      void this.#serve(req, res, body === undefined ? '' : body.toString('utf8'));
    });
    // The caller went away mid-body: nobody is left to answer.
    req.on('error', () => undefined);
  }

  async #serve(req: IncomingMessage, res: ServerResponse, text: string): Promise<void> {
    let body: unknown;
    try {
      body = PROTOTYPE_HINT.test(text) ? JSON.parse(text, refusePrototypeKeys) : JSON.parse(text);
    } catch {
      send(res, new TxmeshError('TXM_BAD_REQUEST', NOT_JSON));
      return;
    }
    try {
      const result = await this.#options.manager.begin(body, requestContext(req.headers));
      this.#options.onDecided?.(result);
      reply(res, 200, JSON.stringify(result));
    } catch (err) {
      const error = toTxmeshError(err);
      if (error.code === 'TXM_INTERNAL') this.#options.log.error({ err }, `POST ${Paths.TRANSACTIONS} failed unexpectedly`);
      send(res, error);
    }
  }
}

function refusePrototypeKeys(this: unknown, key: string, value: unknown): unknown {
  if (key === '__proto__' || (key === 'constructor' && typeof value === 'object' && value !== null && Object.hasOwn(value, 'prototype'))) {
    throw new SyntaxError('prototype key');
  }
  return value;
}

/** A refusal through the same sendTxmeshError the fastify routes use (status, Retry-After, body). */
function send(res: ServerResponse, error: TxmeshError): void {
  const headers: Record<string, string> = {};
  let status = 500;
  const errorReply = {
    code(statusCode: number) {
      status = statusCode;
      return errorReply;
    },
    header(name: string, value: string) {
      headers[name] = value;
      return errorReply;
    },
    send(payload?: unknown) {
      reply(res, status, JSON.stringify(payload), headers);
    },
  };
  sendTxmeshError(errorReply, error);
}

function reply(res: ServerResponse, status: number, json: string, headers?: Record<string, string>): void {
  if (res.headersSent || res.destroyed) return;
  const head: Record<string, string | number> = headers ?? {};
  head['content-type'] = 'application/json; charset=utf-8';
  head['content-length'] = Buffer.byteLength(json);
  res.writeHead(status, head);
  res.end(json);
}
