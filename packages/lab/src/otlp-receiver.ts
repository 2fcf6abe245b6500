/**
 * A local OTLP/HTTP trace receiver (POST /v1/traces), so tests can assert the spans txmesh processes export
 * and the benchmark can measure what exporting every span costs. Tests point processes at it (`exporterEnv`,
 * JSON or protobuf: every span decoded and kept); the benchmark with the default encoding, protobuf
 * (`benchmarkEnv`: spans only counted).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import type { OtlpExport, OtlpKeyValue, OtlpValue } from './otlp-export.ts';
import { countProtobufSpans, decodeProtobufExport } from './otlp-protobuf.ts';

/** A received span, flattened: ids in hex, attributes as plain values, the exporting process's service.name. */
export interface ReceivedSpan {
  serviceName: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, unknown>;
  events: { name: string; attributes: Record<string, unknown> }[];
  links: { traceId: string; spanId: string; attributes: Record<string, unknown> }[];
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number;
}

/** Largest export request accepted; the SDK's batches are far smaller. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

function plain(value: OtlpValue | undefined): unknown {
  if (value === undefined) return undefined;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return Number(value.doubleValue);
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(plain);
  return undefined;
}

function attributesOf(list: OtlpKeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) out[kv.key] = plain(kv.value);
  return out;
}

export function flattenExport(body: OtlpExport): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const serviceName = String(attributesOf(rs.resource?.attributes)['service.name'] ?? '');
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        spans.push({
          serviceName,
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId ? s.parentSpanId : undefined,
          name: s.name,
          kind: s.kind ?? 0,
          startNs: BigInt(s.startTimeUnixNano ?? 0),
          endNs: BigInt(s.endTimeUnixNano ?? 0),
          attributes: attributesOf(s.attributes),
          events: (s.events ?? []).map((e) => ({ name: e.name, attributes: attributesOf(e.attributes) })),
          links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId, attributes: attributesOf(l.attributes) })),
          statusCode: s.status?.code ?? 0,
        });
      }
    }
  }
  return spans;
}

export class OtlpReceiver {
  readonly url: string;
  readonly #server: Server;
  readonly #keep: boolean;
  readonly #spans: ReceivedSpan[] = [];
  #count = 0;
  #requests = 0;

  private constructor(server: Server, url: string, keep: boolean) {
    this.#server = server;
    this.url = url;
    this.#keep = keep;
  }

  /** `keepSpans: false` only counts them (the benchmark): memory stays flat over a long run. */
  static async start(options: { keepSpans?: boolean } = {}): Promise<OtlpReceiver> {
    let receiver: OtlpReceiver | undefined;
    const server = createServer((req, res) => {
      void receiver!.#handle(req).then(
        (status) => {
          // A protobuf export gets an empty ExportTraceServiceResponse: zero bytes in that encoding.
          if (status === 200 && String(req.headers['content-type']).startsWith('application/x-protobuf')) res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
          else res.writeHead(status, { 'content-type': 'application/json' }).end(status === 200 ? '{}' : '{"error":"POST OTLP JSON or protobuf to /v1/traces"}');
        },
        () => res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"unreadable export request"}'),
      );
    });
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    receiver = new OtlpReceiver(server, `http://127.0.0.1:${port}`, options.keepSpans ?? true);
    return receiver;
  }

  /** The OTEL_* variables that make a txmesh process export every span here, in either OTLP/HTTP encoding. */
  exporterEnv(protocol: 'http/protobuf' | 'http/json' = 'http/protobuf'): NodeJS.ProcessEnv {
    return {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: this.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
      OTEL_TRACES_SAMPLER: 'always_on',
      // Short export delay: tests see spans soon after the work.
      OTEL_BSP_SCHEDULE_DELAY: '200',
    };
  }

  /**
   * The OTEL_* variables of a production-like export of every span here: OTLP over HTTP with protobuf and
   * the batch span processor's defaults (what OTEL_EXPORTER_OTLP_ENDPOINT alone gives), sampling everything,
   * or below 1 that share of the transactions (parentbased_traceidratio: the client's decision is kept downstream).
   */
  benchmarkEnv(sampleRatio = 1): NodeJS.ProcessEnv {
    const sampler = sampleRatio >= 1 ? { OTEL_TRACES_SAMPLER: 'always_on' } : { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: String(sampleRatio) };
    return {
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: this.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      ...sampler,
    };
  }

  get spans(): readonly ReceivedSpan[] {
    return this.#spans;
  }
  /** Spans received so far (also when they are not kept). */
  get count(): number {
    return this.#count;
  }
  get requests(): number {
    return this.#requests;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage): Promise<number> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) return 413;
      chunks.push(chunk);
    }
    const path = (req.url ?? '').split('?')[0];
    const type = String(req.headers['content-type'] ?? '');
    const json = type.startsWith('application/json');
    if (req.method !== 'POST' || path !== '/v1/traces' || !(json || type.startsWith('application/x-protobuf'))) return 415;
    let raw = Buffer.concat(chunks);
    if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
    this.#requests += 1;
    if (!json && !this.#keep) {
      this.#count += countProtobufSpans(raw);
      return 200;
    }
    const spans = flattenExport(json ? (JSON.parse(raw.toString('utf8')) as OtlpExport) : decodeProtobufExport(raw));
    this.#count += spans.length;
    if (this.#keep) this.#spans.push(...spans);
    return 200;
  }
}
