/**
 * The coordinator's batch channels (client batch-channel.ts), one per sidecar address and service: opened on
 * the first batch to it, with the proof the batch requests carry (checked once, at the upgrade), and kept. A
 * sidecar that refuses the upgrade (an older release) gets its batches over HTTP and is asked again later.
 */
import { BatchChannel, DEFAULT_MAX_ANSWER_BYTES, type JsonAnswer } from '@txmesh/client';
import { Paths } from '@txmesh/protocol';

/**
 * Sidecar addresses come and go: past this many channels the unconnected ones are forgotten, and while every
 * one is connected a new sidecar's batches go over HTTP.
 */
const MAX_CHANNELS = 10_000;

export class SidecarChannels {
  readonly #channels = new Map<string, BatchChannel>();
  readonly #authorization: (service: string | undefined) => string | undefined;
  readonly #retryRefusedMs: number | undefined;
  /** Batches answered over a channel. */
  calls = 0;

  constructor(authorization: (service: string | undefined) => string | undefined, options: { retryRefusedMs?: number } = {}) {
    this.#authorization = authorization;
    this.#retryRefusedMs = options.retryRefusedMs;
  }

  /** The sidecar's answer over its channel, or undefined when the batch must go over HTTP (`body` is then not made). */
  async call(sidecarUrl: string, service: string | undefined, body: () => string, timeoutMs: number): Promise<JsonAnswer | undefined> {
    const key = `${service ?? ''} ${sidecarUrl}`;
    let channel = this.#channels.get(key);
    if (channel === undefined) {
      if (this.#channels.size >= MAX_CHANNELS) {
        for (const [k, c] of this.#channels) if (c.idle) this.#channels.delete(k);
        if (this.#channels.size >= MAX_CHANNELS) return undefined;
      }
      channel = new BatchChannel({
        url: sidecarUrl,
        path: Paths.SIDECAR_CHANNEL,
        authorization: this.#authorization(service),
        maxAnswerBytes: DEFAULT_MAX_ANSWER_BYTES,
        ...(this.#retryRefusedMs === undefined ? {} : { retryRefusedMs: this.#retryRefusedMs }),
      });
      this.#channels.set(key, channel);
    }
    const answer = await channel.call(body, timeoutMs);
    if (answer !== undefined) this.calls += 1;
    return answer;
  }

  /** Open channels and the upgrades refused so far (tests). */
  stats(): { open: number; refusals: number } {
    let open = 0;
    let refusals = 0;
    for (const channel of this.#channels.values()) {
      if (channel.open) open += 1;
      refusals += channel.refusals;
    }
    return { open, refusals };
  }

  /** Closes every channel; their calls in flight fail CLOSED. */
  destroy(): void {
    for (const channel of this.#channels.values()) channel.destroy();
    this.#channels.clear();
  }
}
