/** Sidecar options and their defaults, checked once at start so a typo fails loudly and early. */
import { DEFAULT_LOG_LEVEL, DEFAULT_MAX_CONNECTIONS, LOG_LEVELS, TxmeshError, isKey, isLogLevel, isValidName } from '@txmesh/protocol';

export interface SidecarOptions {
  /** Name of the service this sidecar stands next to. */
  service: string;
  /** Where the service listens, e.g. http://127.0.0.1:3001. */
  serviceUrl: string;
  /** Coordinator shard URLs; the index is the shard number. */
  coordinatorUrls: string[];
  /** Folder of the sidecar's SQLite file. */
  dataDir: string;
  host?: string;
  port?: number;
  /** URL the shards use to reach this sidecar; defaults to http://host:port. */
  advertiseUrl?: string;
  heartbeatMs?: number;
  resolveIntervalMs?: number;
  inDoubtAfterMs?: number;
  /** How long a batch or prepared-list call to the service may take. */
  serviceTimeoutMs?: number;
  /** How long a proxied ordinary request may wait for the service's answer before the caller gets a 502. */
  proxyTimeoutMs?: number;
  /** How long a registration or decision call to a shard may take. */
  coordinatorTimeoutMs?: number;
  /** pino level of the JSON log lines on stderr: fatal, error, warn (default), info, debug, trace or silent. */
  logLevel?: string;
  /** false: each item of a coordinator batch goes to the service and the store on its own (naive mode). */
  batching?: boolean;
  /**
   * Default true. false: the yes-vote records are written without an fsync (TXMESH_SIDECAR_FORCED_RECORDS=off);
   * after a machine crash the in-doubt resolver finds such branches in the service's durable prepared list.
   */
  forcePreparedRecords?: boolean;
  /**
   * Default true: batches go to the service over the batch channel (one upgraded connection, a frame per call)
   * while the service takes it, else over HTTP. false (TXMESH_BATCH_CHANNEL=off): always over HTTP.
   */
  batchChannel?: boolean;
  /**
   * The service key(s) of `service` (hex; the first signs): when given, batches are taken only from a
   * coordinator, and calls to the shards and to the service carry this sidecar's proofs. Omitted: no checks.
   */
  keys?: readonly string[];
  /** Open connections served (default 1000); past it, requests other than the probes get TXM_OVERLOADED. */
  maxConnections?: number;
  /** Also serve the health and readiness probes on this port, from a thread of their own (see probe-listener). */
  probePort?: number;

  /** PEM certificate and key: serve HTTPS (batches and proxied traffic) instead of HTTP. */
  tls?: { cert: string; key: string };
}

export type ResolvedOptions = Required<Omit<SidecarOptions, 'advertiseUrl' | 'keys' | 'tls' | 'probePort'>> & {
  probePort: number | undefined;
  advertiseUrl: string | undefined;
  keys: readonly string[] | undefined;
  tls: { cert: string; key: string } | undefined;
};

function httpUrl(value: unknown, field: string): string {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw new TxmeshError('TXM_BAD_REQUEST', `${field} must be an absolute http(s) URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TxmeshError('TXM_BAD_REQUEST', `${field} must be an http(s) URL`);
  return url.origin;
}

function positiveInt(value: number | undefined, fallback: number, field: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) throw new TxmeshError('TXM_BAD_REQUEST', `${field} must be a positive integer of milliseconds`);
  return value;
}

function positiveCount(value: number | undefined, fallback: number, field: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0) throw new TxmeshError('TXM_BAD_REQUEST', `${field} must be a positive integer`);
  return value;
}

function portNumber(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new TxmeshError('TXM_BAD_REQUEST', `${field} must be an integer from 0 to 65535`);
  return value;
}

function resolveKeys(keys: readonly string[] | undefined): readonly string[] | undefined {
  if (keys === undefined) return undefined;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every(isKey)) throw new TxmeshError('TXM_BAD_REQUEST', 'keys must be a non-empty list of 64-hex-digit service keys');
  return [...keys];
}

export function resolveOptions(opts: SidecarOptions): ResolvedOptions {
  if (!isValidName(opts.service)) throw new TxmeshError('TXM_BAD_REQUEST', 'service must be a name of letters, digits, . _ - (1-63 chars)');
  if (!Array.isArray(opts.coordinatorUrls)) throw new TxmeshError('TXM_BAD_REQUEST', 'coordinatorUrls must be an array of URLs, in shard order');
  if (opts.logLevel !== undefined && !isLogLevel(opts.logLevel)) throw new TxmeshError('TXM_BAD_REQUEST', `logLevel must be one of ${LOG_LEVELS.join(', ')}`);
  if (typeof opts.dataDir !== 'string' || opts.dataDir.length === 0) throw new TxmeshError('TXM_BAD_REQUEST', 'dataDir must be a folder path');
  const port = portNumber(opts.port ?? 0, 'port');
  return {
    service: opts.service,
    serviceUrl: httpUrl(opts.serviceUrl, 'serviceUrl'),
    coordinatorUrls: opts.coordinatorUrls.map((u, i) => httpUrl(u, `coordinatorUrls[${i}]`)),
    dataDir: opts.dataDir,
    host: opts.host ?? '127.0.0.1',
    port,
    advertiseUrl: opts.advertiseUrl === undefined ? undefined : httpUrl(opts.advertiseUrl, 'advertiseUrl'),
    heartbeatMs: positiveInt(opts.heartbeatMs, 1000, 'heartbeatMs'),
    resolveIntervalMs: positiveInt(opts.resolveIntervalMs, 1000, 'resolveIntervalMs'),
    inDoubtAfterMs: positiveInt(opts.inDoubtAfterMs, 3000, 'inDoubtAfterMs'),
    serviceTimeoutMs: positiveInt(opts.serviceTimeoutMs, 30_000, 'serviceTimeoutMs'),
    proxyTimeoutMs: positiveInt(opts.proxyTimeoutMs, 60_000, 'proxyTimeoutMs'),
    coordinatorTimeoutMs: positiveInt(opts.coordinatorTimeoutMs, 5000, 'coordinatorTimeoutMs'),
    logLevel: opts.logLevel ?? DEFAULT_LOG_LEVEL,
    batching: opts.batching ?? true,
    forcePreparedRecords: opts.forcePreparedRecords ?? true,
    batchChannel: opts.batchChannel ?? true,
    maxConnections: positiveCount(opts.maxConnections, DEFAULT_MAX_CONNECTIONS, 'maxConnections'),
    keys: resolveKeys(opts.keys),
    tls: opts.tls,
    probePort: opts.probePort === undefined ? undefined : portNumber(opts.probePort, 'probePort'),
  };
}
