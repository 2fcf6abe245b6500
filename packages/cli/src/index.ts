export { main } from './main.ts';
export { FlagReader, parseArgs, UsageError, type ParsedArgs } from './args.ts';
export { serve, envSwitch, READY_PREFIX, type Closable } from './serve.ts';
