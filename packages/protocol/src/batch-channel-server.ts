/**
 * The answering end of a batch channel (batch-frames.ts) on a node:http server: a GET at `path` with
 * `Upgrade: txmesh-batch/1` is admitted once (credential, closing, capacity: `admit` throws a TxmeshError to
 * refuse, and the refusal is that error's status and body, the socket then closed), after which each frame is
 * one call, parsed and answered by `answer` as the HTTP route would, every refusal a catalogue error's body with
 * its status. The sidecar serves the coordinator's batches with it, and the participant SDK the sidecar's.
 *
 * close(): upgrades are refused from then on, calls arriving on an open channel are answered TXM_SHUTTING_DOWN,
 * and each channel is ended once its calls in flight are answered, so a closing server is not held open.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { BATCH_CHANNEL_PROTOCOL, BatchFrameReader, encodeBatchFrame, type BatchFrame } from './batch-frames.ts';
import { TxmeshError } from './errors.ts';
import { toTxmeshError } from './http-errors.ts';
import { parseJsonRefusingPrototypeKeys } from './json-text.ts';

/** How long an ended channel waits for its caller to close its side before the socket is destroyed. */
export const CHANNEL_CLOSE_GRACE_MS = 2_000;
/** TCP keep-alive on an idle channel, so one whose caller vanished (power, cable) is found and closed. */
export const CHANNEL_KEEP_ALIVE_MS = 30_000;

export interface BatchChannelServerOptions {
  /** The path upgrades are taken at. */
  path: string;
  /** The largest call a frame may carry. */
  maxPayloadBytes: number;
  /** Runs before an upgrade is taken; throws (a TxmeshError) to refuse it. */
  admit(req: IncomingMessage): void;
  /** Answers one parsed call body, as the HTTP route would (throws a TxmeshError to refuse it). */
  answer(body: unknown): Promise<unknown>;
  /** Told about failures that are not the caller's fault (TXM_INTERNAL). */
  onInternalError(err: unknown): void;
}

export class BatchChannelServer {
  readonly #options: BatchChannelServerOptions;
  /** Open channels and their calls being answered. */
  readonly #open = new Map<Duplex, { inFlight: number }>();
  #closing = false;
  /** Calls answered over the channels since start. */
  calls = 0;

  constructor(options: BatchChannelServerOptions) {
    this.#options = options;
  }

  get openChannels(): number {
    return this.#open.size;
  }

  /** Takes the upgrade when it asks for this channel's path; false (the socket untouched) otherwise. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = (req.url ?? '').split('?', 1)[0];
    if (path !== this.#options.path) return false;
    try {
      if (this.#closing) throw new TxmeshError('TXM_SHUTTING_DOWN', 'the server is closing');
      if (req.method !== 'GET' || req.headers.upgrade?.toLowerCase() !== BATCH_CHANNEL_PROTOCOL) {
        throw new TxmeshError('TXM_BAD_REQUEST', `the batch channel is a GET with Upgrade: ${BATCH_CHANNEL_PROTOCOL}`);
      }
      this.#options.admit(req);
    } catch (err) {
      refuseUpgrade(socket, toTxmeshError(err));
      return true;
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${BATCH_CHANNEL_PROTOCOL}\r\n\r\n`);
    (socket as Socket).setNoDelay?.(true);
    (socket as Socket).setKeepAlive?.(true, CHANNEL_KEEP_ALIVE_MS);
    this.#serve(socket, head);
    return true;
  }

  /** Takes no more upgrades; each channel ends once its calls in flight are answered. */
  close(): void {
    this.#closing = true;
    for (const [socket, channel] of this.#open) if (channel.inFlight === 0) endChannel(socket);
  }

  #serve(socket: Duplex, head: Buffer): void {
    const channel = { inFlight: 0 };
    this.#open.set(socket, channel);
    const reader = new BatchFrameReader(this.#options.maxPayloadBytes);
    const onData = (chunk: Buffer): void => {
      let frames: BatchFrame[];
      try {
        frames = reader.push(chunk);
      } catch (err) {
        // The rest of the stream cannot be cut into frames: the refused call is answered, then the channel ends.
        socket.off('data', onData);
        const error = toTxmeshError(err);
        socket.end(encodeBatchFrame(reader.refusedId ?? 0, error.status, JSON.stringify(error.toBody())));
        return;
      }
      for (const frame of frames) void this.#call(socket, channel, frame);
    };
    socket.on('data', onData);
    // The caller gone (mid-call or not): nobody is left to answer. Its calls run to their end unanswered.
    socket.on('end', () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.#open.delete(socket));
    if (head.length > 0) onData(head);
  }

  async #call(socket: Duplex, channel: { inFlight: number }, frame: BatchFrame): Promise<void> {
    channel.inFlight += 1;
    let status = 200;
    let payload: string;
    try {
      if (this.#closing) throw new TxmeshError('TXM_SHUTTING_DOWN', 'the server is closing');
      payload = JSON.stringify(await this.#options.answer(parseJsonRefusingPrototypeKeys(frame.payload)));
    } catch (err) {
      const error = toTxmeshError(err);
      if (error.code === 'TXM_INTERNAL') this.#options.onInternalError(err);
      status = error.status;
      payload = JSON.stringify(error.toBody());
    } finally {
      channel.inFlight -= 1;
    }
    this.calls += 1;
    if (socket.destroyed || !socket.writable) return;
    socket.write(encodeBatchFrame(frame.id, status, payload));
    if (this.#closing && channel.inFlight === 0) endChannel(socket);
  }
}

/** Ends a channel; a caller that does not close its side in time (a stopped process) does not hold the server open. */
function endChannel(socket: Duplex): void {
  socket.end();
  setTimeout(() => socket.destroy(), CHANNEL_CLOSE_GRACE_MS).unref();
}

/** Refuses an upgrade: the error's status and catalogue body as an HTTP answer, and the end of the socket. */
export function refuseUpgrade(socket: Duplex, error: TxmeshError): void {
  const body = JSON.stringify(error.toBody());
  const retryAfter = (error as { retryAfterSeconds?: unknown }).retryAfterSeconds;
  const extra = typeof retryAfter === 'number' ? `Retry-After: ${retryAfter}\r\n` : '';
  socket.end(
    `HTTP/1.1 ${error.status} ${error.code}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`,
  );
}
