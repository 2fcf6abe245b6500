/**
 * What a process needs to run as a long-lived txmesh role of its own (the lab's example services): flag
 * parsing, serve() with its ready line, and the telemetry flags. `txmesh/roles` loads only these, not the
 * operator command, the client commands or the injector that the package's index also exports.
 */
export { FlagReader, parseArgs, UsageError, type ParsedArgs } from './args.ts';
export { serve, envSwitch, READY_PREFIX, DEFAULT_READY_TIMEOUT_MS, type Closable, type ServeOptions } from './serve.ts';
export { telemetryFlags, METRICS_PREFIX, type TelemetryOptions } from './telemetry-options.ts';
