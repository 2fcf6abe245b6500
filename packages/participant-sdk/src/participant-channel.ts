/**
 * The service's end of the batch channel (protocol batch-frames.ts): the sidecar upgrades one connection to
 * the participant's server once, with its credential, and then sends each batch as a frame, answered by a
 * frame, with no HTTP request, fastify hooks or reply objects per batch. The batch is checked and handled as
 * the HTTP route does it (`answer`), and every refusal is a catalogue error's body with its status.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  BATCH_CHANNEL_PROTOCOL,
  BatchFrameReader,
  CallerRole,
  MAX_BATCH_BODY_BYTES,
  Paths,
  TxmeshError,
  assertServiceProof,
  encodeBatchFrame,
  parseJsonRefusingPrototypeKeys,
  toTxmeshError,
  type BatchFrame,
} from '@txmesh/protocol';

/** When given, the channel takes only the sidecar of `service` (proof under one of `keys`). */
export interface ChannelAccess {
  service: string;
  keys: readonly string[];
}

export interface ParticipantChannelOptions {
  /** Answers one parsed batch body, as the HTTP route would (throws a TxmeshError to refuse it). */
  answer(body: unknown): Promise<unknown>;
  access?: ChannelAccess | undefined;
  /** Told about failures that are not the caller's fault (TXM_INTERNAL). */
  onInternalError(err: unknown): void;
}

/** Calls of one open channel still being answered. */
interface OpenChannel {
  inFlight: number;
}

export class ParticipantChannels {
  readonly #options: ParticipantChannelOptions;
  readonly #open = new Map<Duplex, OpenChannel>();
  #listener: ((req: IncomingMessage, socket: Duplex, head: Buffer) => void) | undefined;
  #closing = false;

  constructor(options: ParticipantChannelOptions) {
    this.#options = options;
  }

  /** Listens for upgrades on `server` until `close()`. */
  attach(server: Server): void {
    this.#listener = (req, socket, head) => this.#onUpgrade(server, req, socket, head);
    server.on('upgrade', this.#listener);
  }

  /** Takes no more calls; each channel ends once its calls are answered (a closing server waits for that). */
  close(server: Server): void {
    this.#closing = true;
    if (this.#listener !== undefined) server.off('upgrade', this.#listener);
    for (const [socket, channel] of this.#open) if (channel.inFlight === 0) socket.end();
  }

  get openChannels(): number {
    return this.#open.size;
  }

  #onUpgrade(server: Server, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '').split('?', 1)[0];
    if (path !== Paths.PARTICIPANT_CHANNEL) {
      // Another listener may take it; alone here, nobody would, and the socket would hang.
      if (server.listenerCount('upgrade') === 1) refuse(socket, new TxmeshError('TXM_NOT_FOUND', `no upgrade at ${path?.slice(0, 200) ?? ''}`));
      return;
    }
    try {
      if (this.#closing) throw new TxmeshError('TXM_SHUTTING_DOWN', 'the service is closing');
      if (req.method !== 'GET' || req.headers.upgrade?.toLowerCase() !== BATCH_CHANNEL_PROTOCOL) {
        throw new TxmeshError('TXM_BAD_REQUEST', `the batch channel is a GET with Upgrade: ${BATCH_CHANNEL_PROTOCOL}`);
      }
      const access = this.#options.access;
      if (access !== undefined) assertServiceProof(req.headers.authorization, CallerRole.SIDECAR, access.service, access.keys);
    } catch (err) {
      refuse(socket, toTxmeshError(err));
      return;
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${BATCH_CHANNEL_PROTOCOL}\r\n\r\n`);
    (socket as Socket).setNoDelay?.(true);
    this.#serveChannel(socket, head);
  }

  #serveChannel(socket: Duplex, head: Buffer): void {
    const channel: OpenChannel = { inFlight: 0 };
    this.#open.set(socket, channel);
    const reader = new BatchFrameReader(MAX_BATCH_BODY_BYTES);
    const onData = (chunk: Buffer): void => {
      let frames: BatchFrame[];
      try {
        frames = reader.push(chunk);
      } catch (err) {
        // The rest of the stream cannot be cut into frames: the calls in flight are answered, then it ends.
        socket.off('data', onData);
        const error = toTxmeshError(err);
        socket.end(encodeBatchFrame(reader.refusedId ?? 0, error.status, JSON.stringify(error.toBody())));
        return;
      }
      for (const frame of frames) void this.#serveCall(socket, channel, frame);
    };
    socket.on('data', onData);
    // A peer gone mid-call: nothing is left to answer; the socket's close removes the channel.
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.#open.delete(socket));
    if (head.length > 0) onData(head);
  }

  async #serveCall(socket: Duplex, channel: OpenChannel, frame: BatchFrame): Promise<void> {
    channel.inFlight += 1;
    let status = 200;
    let payload: string;
    try {
      if (this.#closing) throw new TxmeshError('TXM_SHUTTING_DOWN', 'the service is closing');
      payload = JSON.stringify(await this.#options.answer(parseJsonRefusingPrototypeKeys(frame.payload)));
    } catch (err) {
      const error = toTxmeshError(err);
      if (error.code === 'TXM_INTERNAL') this.#options.onInternalError(err);
      status = error.status;
      payload = JSON.stringify(error.toBody());
    } finally {
      channel.inFlight -= 1;
    }
    if (socket.destroyed || !socket.writable) return;
    socket.write(encodeBatchFrame(frame.id, status, payload));
    if (this.#closing && channel.inFlight === 0) socket.end();
  }
}

/** An HTTP answer on a socket that is not upgraded, and the end of it. */
function refuse(socket: Duplex, error: TxmeshError): void {
  const body = JSON.stringify(error.toBody());
  socket.end(
    `HTTP/1.1 ${error.status} ${error.code}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
