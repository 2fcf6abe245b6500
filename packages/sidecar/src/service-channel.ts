/**
 * The sidecar's end of the batch channel (protocol batch-frames.ts): one connection to the service, upgraded
 * once with this sidecar's credential, over which each batch call is a frame each way. Several calls may be
 * in flight; each has its own time bound. A service that does not take the channel (an SDK without it, a
 * refused credential, something in between that does not pass upgrades) answers the upgrade with an HTTP
 * status: its batches then go over HTTP, and the upgrade is tried again after `retryRefusedMs`. An https
 * service URL keeps its batches on HTTPS (the channel is plain TCP, for a service next to its sidecar).
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { CallDeadline, CallFailure, HttpCallError, type JsonAnswer } from '@txmesh/client';
import { BATCH_CHANNEL_PROTOCOL, BatchFrameReader, Paths, encodeBatchFrame, type BatchFrame } from '@txmesh/protocol';

/** How long a refused upgrade sends the batches over HTTP before it is tried again. */
export const DEFAULT_RETRY_REFUSED_MS = 60_000;

interface PendingCall {
  resolve(answer: JsonAnswer): void;
  reject(err: Error): void;
  deadline: CallDeadline;
}

/** The open connection and its calls. */
interface Connection {
  socket: Duplex;
  calls: Map<number, PendingCall>;
  /** Its socket reported its close: no call may be written onto it any more. */
  closed: boolean;
}

export interface ServiceChannelOptions {
  serviceUrl: string;
  authorization?: string | undefined;
  maxAnswerBytes: number;
  retryRefusedMs?: number;
}

export class ServiceChannel {
  readonly #url: URL;
  readonly #authorization: string | undefined;
  readonly #maxAnswerBytes: number;
  readonly #retryRefusedMs: number;
  #connection: Connection | undefined;
  #connecting: Promise<Connection | undefined> | undefined;
  #refusedUntil = 0;
  #nextId = 1;
  #closed = false;

  constructor(options: ServiceChannelOptions) {
    this.#url = new URL(options.serviceUrl);
    this.#authorization = options.authorization;
    this.#maxAnswerBytes = options.maxAnswerBytes;
    this.#retryRefusedMs = options.retryRefusedMs ?? DEFAULT_RETRY_REFUSED_MS;
  }

  /**
   * Sends one batch body. Resolves with the service's answer, or undefined when the service does not take the
   * channel (send it over HTTP). Rejects with an HttpCallError, as the JSON client does, when the call fails.
   */
  async call(body: string, timeoutMs: number): Promise<JsonAnswer | undefined> {
    if (this.#closed) throw new HttpCallError(CallFailure.CLOSED, this.#where(), 'the client is closed', true);
    if (this.#url.protocol !== 'http:' || (this.#connection === undefined && Date.now() < this.#refusedUntil)) return undefined;
    const deadline = new CallDeadline(timeoutMs);
    try {
      const connection = this.#connection ?? (await this.#connect(deadline, timeoutMs));
      if (connection === undefined) return undefined;
      return await this.#send(connection, body, deadline, timeoutMs);
    } finally {
      deadline.clear();
    }
  }

  /** Ends the connection; calls in flight fail CLOSED. */
  destroy(): void {
    this.#closed = true;
    this.#connection?.socket.destroy();
  }

  /** True while a connection is upgraded (for tests and stats). */
  get open(): boolean {
    return this.#connection !== undefined;
  }

  #send(connection: Connection, body: string, deadline: CallDeadline, timeoutMs: number): Promise<JsonAnswer> {
    const { socket } = connection;
    // A socket that is closing or closed (destroyed, its writable side ended, its close reported) would take
    // the frame and never answer it: the call fails now, as unreachable, and the next one opens a new channel.
    if (connection.closed || socket.destroyed || !socket.writable) {
      if (this.#connection === connection) this.#connection = undefined;
      return Promise.reject(new HttpCallError(CallFailure.UNREACHABLE, this.#where(), 'the batch channel closed before the call was sent', true));
    }
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffffffff ? 1 : this.#nextId + 1;
    return new Promise<JsonAnswer>((resolve, reject) => {
      connection.calls.set(id, { resolve, reject, deadline });
      // A late answer finds no call and is dropped; the connection stays for the next ones.
      deadline.onPass(() => {
        connection.calls.delete(id);
        reject(new HttpCallError(CallFailure.TIMEOUT, this.#where(), `no complete answer within ${timeoutMs} ms`, false));
      });
      // A write the socket refuses (it closed meanwhile) fails its call at once, not at its deadline.
      socket.write(encodeBatchFrame(id, 0, body), (err) => {
        if (err === undefined || err === null || !connection.calls.delete(id)) return;
        reject(new HttpCallError(CallFailure.UNREACHABLE, this.#where(), `the batch channel closed while the call was sent: ${err.message}`, false, err));
      });
    });
  }

  #connect(deadline: CallDeadline, timeoutMs: number): Promise<Connection | undefined> {
    this.#connecting ??= this.#upgrade(deadline, timeoutMs).finally(() => (this.#connecting = undefined));
    return this.#connecting;
  }

  #upgrade(deadline: CallDeadline, timeoutMs: number): Promise<Connection | undefined> {
    return new Promise<Connection | undefined>((resolve, reject) => {
      const headers: Record<string, string> = { connection: 'Upgrade', upgrade: BATCH_CHANNEL_PROTOCOL };
      if (this.#authorization !== undefined) headers.authorization = this.#authorization;
      const request = http.request(new URL(`${this.#url.pathname.replace(/\/+$/, '')}${Paths.PARTICIPANT_CHANNEL}`, this.#url), { method: 'GET', headers, agent: false });
      deadline.onPass(() => request.destroy(new HttpCallError(CallFailure.TIMEOUT, this.#where(), `no upgrade within ${timeoutMs} ms`, false)));
      request.on('upgrade', (_response, socket, head) => {
        if (this.#closed) {
          socket.destroy();
          reject(new HttpCallError(CallFailure.CLOSED, this.#where(), 'the client is closed', false));
          return;
        }
        resolve(this.#opened(socket, head));
      });
      // Any HTTP answer but 101: this service does not take the channel (yet). A closing one (503) will after
      // its restart, so only a lasting refusal is remembered.
      request.on('response', (response) => {
        response.resume();
        if (response.statusCode !== 503) this.#refusedUntil = Date.now() + this.#retryRefusedMs;
        resolve(undefined);
      });
      request.on('error', (err) => {
        const code = String((err as { code?: unknown }).code ?? '');
        reject(err instanceof HttpCallError ? err : new HttpCallError(CallFailure.UNREACHABLE, this.#where(), err.message, code === 'ECONNREFUSED', err));
      });
      request.end();
    });
  }

  #opened(socket: Duplex, head: Buffer): Connection {
    (socket as Socket).setNoDelay?.(true);
    const connection: Connection = { socket, calls: new Map(), closed: false };
    const reader = new BatchFrameReader(this.#maxAnswerBytes);
    const onData = (chunk: Buffer): void => {
      let frames: BatchFrame[];
      try {
        frames = reader.push(chunk);
      } catch (err) {
        socket.destroy(err as Error);
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
    socket.on('error', () => undefined);
    socket.on('close', () => {
      connection.closed = true;
      if (this.#connection === connection) this.#connection = undefined;
      const failure = this.#closed ? CallFailure.CLOSED : CallFailure.UNREACHABLE;
      for (const call of connection.calls.values()) call.reject(new HttpCallError(failure, this.#where(), 'the batch channel closed before the answer', false));
      connection.calls.clear();
    });
    this.#connection = connection;
    if (head.length > 0) onData(head);
    return connection;
  }

  #where(): string {
    return `${this.#url.origin}${Paths.PARTICIPANT_CHANNEL}`;
  }
}

function parseAnswer(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
