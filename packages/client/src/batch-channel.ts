/**
 * The calling end of a batch channel (protocol batch-frames.ts): one connection to a server, upgraded once with
 * the caller's credential, then one frame each way per call, calls told apart by an id so several are in flight
 * at once. The coordinator uses it towards each sidecar, and each sidecar towards its service.
 *
 * The upgrade is never on a call's path: while no channel is open, `call` starts one in the background and
 * resolves undefined, and the caller sends that call over HTTP. So a slow or hung upgrade costs no call its time
 * bound, and a server that does not take the channel (an older release, a proxy that does not pass upgrades)
 * only ever sees HTTP; its refusal is remembered for `retryRefusedMs` (RETRY_BUSY_MS when it was only busy or
 * closing, or could not be reached).
 *
 * A connection that ends, errors or closes fails its calls in flight at once, not at their deadlines, and takes
 * no new call (those go over HTTP while a new one is opened); a call whose write fails fails at once. A silent
 * peer (a cut network) would hold a connection until TCP gives up, so when a second call times out with nothing
 * at all heard on the connection since the first timed-out one was written, the connection is dropped. One
 * timeout alone is not enough: on a slow link the answer is merely late, and a new connection would be slower.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { BATCH_CHANNEL_PROTOCOL, BatchFrameReader, encodeBatchFrame, type BatchFrame } from '@txmesh/protocol';
import { CallDeadline } from './call-deadline.ts';
import { CallFailure } from './call-failure.ts';
import { HttpCallError, type JsonAnswer } from './json-http-client.ts';

/** How long a refused upgrade sends the calls over HTTP before it is asked for again. */
export const DEFAULT_RETRY_REFUSED_MS = 60_000;
/** The same for a server that refused only because it was busy or closing (429, 503), or was not reached. */
export const RETRY_BUSY_MS = 1_000;
/** TCP keep-alive probes on an idle channel start after this long. */
const KEEP_ALIVE_MS = 30_000;
/** The longest an upgrade may take (it delays no call: they go over HTTP meanwhile). */
export const UPGRADE_TIMEOUT_MS = 10_000;

interface PendingCall {
  resolve(answer: JsonAnswer): void;
  reject(err: Error): void;
  /** performance.now() when the call was written. */
  writtenAt: number;
}

class Connection {
  readonly socket: Duplex;
  readonly calls = new Map<number, PendingCall>();
  /** Set once the socket ended, errored or closed: nothing more is written onto it. */
  broken = false;
  /** performance.now() of the last bytes received. */
  heardAt = performance.now();
  /** When the first call that timed out unheard was written; undefined once anything is heard. */
  silentSince: number | undefined;

  constructor(socket: Duplex) {
    this.socket = socket;
  }
}

export interface BatchChannelOptions {
  /** The server's base URL, http: or https: (an https one trusts what node:https trusts, NODE_EXTRA_CA_CERTS included). */
  url: string;
  /** The path the upgrade is asked for at. */
  path: string;
  /** The Authorization header of the upgrade: the channel's calls are the caller's from then on. */
  authorization?: string | undefined;
  /** The largest answer a frame may carry; a larger one fails its call ANSWER_TOO_LARGE and ends the connection. */
  maxAnswerBytes: number;
  retryRefusedMs?: number;
}

export class BatchChannel {
  readonly #url: URL;
  readonly #where: string;
  readonly #authorization: string | undefined;
  readonly #maxAnswerBytes: number;
  readonly #retryRefusedMs: number;
  #connection: Connection | undefined;
  #connecting: Promise<void> | undefined;
  #refusedUntil = 0;
  #nextId = 1;
  #closed = false;
  /** Upgrades asked for, and refused (for tests and stats). */
  upgrades = 0;
  refusals = 0;

  constructor(options: BatchChannelOptions) {
    this.#url = new URL(`${options.url.replace(/\/+$/, '')}${options.path}`);
    this.#where = this.#url.href;
    this.#authorization = options.authorization;
    this.#maxAnswerBytes = options.maxAnswerBytes;
    this.#retryRefusedMs = options.retryRefusedMs ?? DEFAULT_RETRY_REFUSED_MS;
  }

  /** True while a connection is upgraded and usable. */
  get open(): boolean {
    return this.#connection !== undefined && !this.#connection.broken;
  }

  /** Neither connected nor connecting: nothing of it holds a socket. */
  get idle(): boolean {
    return this.#connection === undefined && this.#connecting === undefined;
  }

  /**
   * Sends one call's body over the open channel. Resolves with the server's answer frame as a JsonAnswer (its
   * status is the HTTP status the server would have answered), or undefined when no channel is open (one is
   * being asked for, or was refused): the caller sends this call over HTTP. Rejects with an HttpCallError.
   * `body` may be a function: it is called only when the call goes over the channel.
   */
  async call(body: string | (() => string), timeoutMs: number): Promise<JsonAnswer | undefined> {
    if (this.#closed) throw new HttpCallError(CallFailure.CLOSED, this.#where, 'the channel is closed', true);
    const connection = this.#connection;
    // A socket already closing (destroyed, or its writable side ended) whose close is not reported yet would take
    // the frame and never answer it: it is broken now, and this call goes over HTTP.
    if (connection !== undefined && !connection.broken && (connection.socket.destroyed || !connection.socket.writable)) this.#broke(connection, 'the channel closed');
    if (connection === undefined || connection.broken) {
      if (this.#connecting === undefined && Date.now() >= this.#refusedUntil) this.#connecting = this.#upgrade().finally(() => (this.#connecting = undefined));
      return undefined;
    }
    const deadline = new CallDeadline(timeoutMs);
    try {
      return await this.#send(connection, typeof body === 'string' ? body : body(), deadline, timeoutMs);
    } finally {
      deadline.clear();
    }
  }

  /** Resolves once an upgrade under way has ended: true when a channel is open (tests). */
  async settled(): Promise<boolean> {
    await this.#connecting;
    return this.open;
  }

  /** Ends the connection: calls in flight fail CLOSED, later ones at once. */
  destroy(): void {
    this.#closed = true;
    const connection = this.#connection;
    if (connection !== undefined) this.#broke(connection, 'the channel was closed');
  }

  #send(connection: Connection, body: string, deadline: CallDeadline, timeoutMs: number): Promise<JsonAnswer> {
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffffffff ? 1 : this.#nextId + 1;
    return new Promise<JsonAnswer>((resolve, reject) => {
      const call: PendingCall = { resolve, reject, writtenAt: performance.now() };
      connection.calls.set(id, call);
      deadline.onPass(() => {
        // A late answer finds no call and is dropped.
        if (!connection.calls.delete(id)) return;
        reject(new HttpCallError(CallFailure.TIMEOUT, this.#where, `no complete answer within ${timeoutMs} ms`, false));
        if (connection.heardAt >= call.writtenAt) return;
        if (connection.silentSince !== undefined && connection.heardAt < connection.silentSince) this.#broke(connection, 'nothing came back on the channel');
        else connection.silentSince ??= call.writtenAt;
      });
      connection.socket.write(encodeBatchFrame(id, 0, body), (err) => {
        if (err) this.#broke(connection, `the call could not be written: ${err.message}`);
      });
    });
  }

  /** Opens the channel, or notes the refusal; never rejects (the calls go over HTTP meanwhile). */
  async #upgrade(): Promise<void> {
    const stack = this.#url.protocol === 'https:' ? await import('node:https') : http;
    this.upgrades += 1;
    await new Promise<void>((resolve) => {
      const headers: Record<string, string> = { connection: 'Upgrade', upgrade: BATCH_CHANNEL_PROTOCOL };
      if (this.#authorization !== undefined) headers.authorization = this.#authorization;
      const request = stack.request(this.#url, { method: 'GET', headers, agent: false });
      const timer = setTimeout(() => request.destroy(new Error(`no upgrade within ${UPGRADE_TIMEOUT_MS} ms`)), UPGRADE_TIMEOUT_MS);
      request.on('close', () => {
        clearTimeout(timer);
        resolve();
      });
      request.on('upgrade', (response: http.IncomingMessage, socket: Duplex, head: Buffer) => {
        clearTimeout(timer);
        if (this.#closed || response.headers.upgrade?.toLowerCase() !== BATCH_CHANNEL_PROTOCOL) {
          socket.destroy();
          if (!this.#closed) this.#refused(0);
        } else {
          this.#opened(socket, head);
        }
        resolve();
      });
      // Any answer but 101: this server does not take the channel, or not now.
      request.on('response', (response: http.IncomingMessage) => {
        clearTimeout(timer);
        response.resume();
        this.#refused(response.statusCode ?? 0);
        resolve();
      });
      // Not reached (or no answer in time): the calls over HTTP say why; the upgrade is asked for again soon.
      request.on('error', () => this.#refused(503));
      request.end();
    });
  }

  #refused(status: number): void {
    this.refusals += 1;
    this.#refusedUntil = Date.now() + (status === 429 || status === 503 ? Math.min(RETRY_BUSY_MS, this.#retryRefusedMs) : this.#retryRefusedMs);
  }

  #opened(socket: Duplex, head: Buffer): void {
    (socket as Socket).setNoDelay?.(true);
    // An idle channel to a server that vanished (power, cable) is found by TCP keep-alive and closed.
    (socket as Socket).setKeepAlive?.(true, KEEP_ALIVE_MS);
    const connection = new Connection(socket);
    const reader = new BatchFrameReader(this.#maxAnswerBytes);
    const onData = (chunk: Buffer): void => {
      connection.heardAt = performance.now();
      connection.silentSince = undefined;
      let frames: BatchFrame[];
      try {
        frames = reader.push(chunk);
      } catch {
        const refused = reader.refusedId === undefined ? undefined : connection.calls.get(reader.refusedId);
        if (refused !== undefined) {
          connection.calls.delete(reader.refusedId!);
          refused.reject(new HttpCallError(CallFailure.ANSWER_TOO_LARGE, this.#where, `the answer is larger than ${this.#maxAnswerBytes} bytes`, false));
        }
        this.#broke(connection, 'an answer too large to read ended the channel');
        return;
      }
      for (const frame of frames) {
        const call = connection.calls.get(frame.id);
        if (call === undefined) continue;
        connection.calls.delete(frame.id);
        call.resolve({ status: frame.status, headers: {}, body: parseAnswer(frame.payload), text: frame.payload });
      }
    };
    socket.on('data', onData);
    socket.on('end', () => this.#broke(connection, 'the server ended the channel'));
    socket.on('error', (err: Error) => this.#broke(connection, err.message));
    socket.on('close', () => this.#broke(connection, 'the channel closed'));
    this.#connection = connection;
    if (head.length > 0) onData(head);
  }

  /** Fails every call in flight on `connection` at once and lets the next call open a new one. */
  #broke(connection: Connection, why: string): void {
    if (connection.broken) return;
    connection.broken = true;
    if (this.#connection === connection) this.#connection = undefined;
    const failure = this.#closed ? CallFailure.CLOSED : CallFailure.UNREACHABLE;
    for (const call of connection.calls.values()) call.reject(new HttpCallError(failure, this.#where, `${why} before the answer`, false));
    connection.calls.clear();
    connection.socket.destroy();
  }
}

function parseAnswer(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
