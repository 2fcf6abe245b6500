/**
 * What the JSON client needs from an HTTP stack: send one request to an origin over kept-alive connections
 * and read its whole answer, bounded in size. Two stacks implement it: node:http, which every txmesh
 * process has loaded already for its own server, and undici, which costs less CPU per call but adds about
 * 110 modules to the process that loads it (see JsonHttpClientOptions.stack).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CallDeadline } from './call-deadline.ts';
import type { CallFailure } from './call-failure.ts';

export interface TransportRequest {
  method: 'GET' | 'POST';
  /** Path and query, prefix included. */
  path: string;
  headers: Record<string, string>;
  body: string | undefined;
  /** The call's time bound; `deadline` runs what the transport registered when it passes. */
  timeoutMs: number;
  deadline: CallDeadline;
}

export interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export interface HttpTransport {
  send(origin: string, request: TransportRequest): Promise<RawAnswer>;
  /** Waits for calls in flight, then closes every connection. */
  close(): Promise<void>;
  /** Aborts calls in flight (they end CLOSED) and closes every connection. */
  destroy(): Promise<void>;
  /** Closes the connections of one origin and forgets it (the caller has no call in flight to it). */
  forget(origin: string): void;
}

export interface TransportOptions {
  /** Kept-alive connections per origin: at most this many calls in flight to one origin. */
  connections: number;
  maxAnswerBytes: number;
}

/** An idle kept-alive connection is closed after this long. */
export const KEEP_ALIVE_MS = 30_000;

/**
 * A call that a transport ended for a reason it knows (the answer too large, the client closed, its own
 * timeout); any other rejection is the stack's error, with its code.
 */
export class CallEnded extends Error {
  readonly failure: CallFailure;
  constructor(failure: CallFailure, detail: string, cause?: unknown) {
    super(detail, cause === undefined ? undefined : { cause });
    this.name = 'CallEnded';
    this.failure = failure;
  }
}
