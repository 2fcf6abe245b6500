/**
 * The batch channel between a sidecar and its service's participant: one HTTP/1.1 connection that the sidecar
 * upgrades once (GET PARTICIPANT_CHANNEL with `Upgrade: txmesh-batch/1` and its credential), after which each
 * batch call is one frame each way instead of an HTTP request and its response. At one batch per transaction
 * the per-request objects, parsing and hooks of node:http and fastify were most of what a batch cost either
 * process (docs/benchmarks.md, issue 18). Calls are told apart by an id, so several may be in flight and
 * answered in any order.
 *
 * A frame: payload length (u32), call id (u32), status (u16: 0 in a call, an HTTP status in an answer),
 * then the payload, UTF-8 JSON (a BranchBatchRequest; a BranchBatchResponse, or a catalogue error's body).
 */
import { TxmeshError } from './errors.ts';

/** The value of the Upgrade header that asks for the batch channel. */
export const BATCH_CHANNEL_PROTOCOL = 'txmesh-batch/1';

const HEADER_BYTES = 10;

export interface BatchFrame {
  id: number;
  status: number;
  payload: string;
}

export function encodeBatchFrame(id: number, status: number, payload: string): Buffer {
  const length = Buffer.byteLength(payload);
  const frame = Buffer.allocUnsafe(HEADER_BYTES + length);
  frame.writeUInt32BE(length, 0);
  frame.writeUInt32BE(id >>> 0, 4);
  frame.writeUInt16BE(status, 8);
  frame.write(payload, HEADER_BYTES, 'utf8');
  return frame;
}

/** Cuts a byte stream into frames. A frame announcing more than `maxPayloadBytes` is refused before it arrives. */
export class BatchFrameReader {
  readonly #maxPayloadBytes: number;
  /** Bytes received and not yet cut into frames, joined only once they hold a whole frame. */
  #chunks: Buffer[] = [];
  #size = 0;
  #needed = HEADER_BYTES;
  #refusedId: number | undefined;

  constructor(maxPayloadBytes: number) {
    this.#maxPayloadBytes = maxPayloadBytes;
  }

  /** The frames completed by `chunk`; throws TXM_BODY_TOO_LARGE (the stream cannot be read further). */
  push(chunk: Buffer): BatchFrame[] {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    if (this.#size < this.#needed) return [];
    let data = this.#chunks.length === 1 ? chunk : Buffer.concat(this.#chunks, this.#size);
    const frames: BatchFrame[] = [];
    this.#needed = HEADER_BYTES;
    while (data.length >= HEADER_BYTES) {
      const length = data.readUInt32BE(0);
      if (length > this.#maxPayloadBytes) {
        this.#refusedId = data.readUInt32BE(4);
        throw new TxmeshError('TXM_BODY_TOO_LARGE', `a batch frame of ${length} bytes; at most ${this.#maxPayloadBytes}`);
      }
      if (data.length < HEADER_BYTES + length) {
        this.#needed = HEADER_BYTES + length;
        break;
      }
      frames.push({ id: data.readUInt32BE(4), status: data.readUInt16BE(8), payload: data.toString('utf8', HEADER_BYTES, HEADER_BYTES + length) });
      data = data.subarray(HEADER_BYTES + length);
    }
    this.#chunks = data.length > 0 ? [data] : [];
    this.#size = data.length;
    return frames;
  }

  /** The id of the call whose frame was refused as too large (the stream ends there). */
  get refusedId(): number | undefined {
    return this.#refusedId;
  }
}
