/**
 * The logger options every txmesh server gives fastify: pino JSON lines on stderr (stdout carries only
 * what a harness reads, such as TXMESH_READY), at the operator's level, each line naming its role.
 */
export interface ServerLoggerOptions {
  level: string;
  /** pino's `name` field on every line, e.g. "coordinator-0", "sidecar-inventory", "service-inventory". */
  name: string;
  stream: NodeJS.WritableStream;
  /** Fields added to every line (pino's mixin), e.g. the active span's trace_id and span_id. */
  mixin?: () => Record<string, unknown>;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const DEFAULT_LOG_LEVEL: LogLevel = 'warn';

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

export function serverLoggerOptions(name: string, level: string = DEFAULT_LOG_LEVEL, mixin?: () => Record<string, unknown>): ServerLoggerOptions {
  return mixin === undefined ? { level, name, stream: process.stderr } : { level, name, stream: process.stderr, mixin };
}
