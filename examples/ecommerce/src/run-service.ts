/**
 * Runs one e-commerce service as its own process:
 *   node --import tsx examples/ecommerce/src/run-service.ts <inventory|payment|order|shipping> --db <file> [--port N] [--host H]
 * Prints one JSON line {"service","url"} on stdout once it listens, and closes cleanly on SIGTERM/SIGINT.
 */
import { parseArgs } from 'node:util';
import { ECOMMERCE_SERVICES } from './service-definition.ts';
import { isEcommerceService, startEcommerceService } from './app.ts';

function fail(message: string): never {
  process.stderr.write(`${message}\nusage: run-service.ts <${ECOMMERCE_SERVICES.join('|')}> --db <file> [--port N] [--host H] [--lock-wait-ms N] [--log-level L]\n`);
  process.exit(2);
}

function intOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) fail(`--${name} must be a non-negative integer`);
  return n;
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    db: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    'lock-wait-ms': { type: 'string' },
    'log-level': { type: 'string' },
  },
});
const name = positionals[0];
if (!isEcommerceService(name)) fail(`first argument must be a service name, got ${String(name)}`);
if (!values.db) fail('--db is required');

const port = intOption(values.port, 'port');
const lockWaitMs = intOption(values['lock-wait-ms'], 'lock-wait-ms');
const service = await startEcommerceService(name, {
  dbPath: values.db,
  ...(values.host !== undefined ? { host: values.host } : {}),
  ...(port !== undefined ? { port } : {}),
  ...(lockWaitMs !== undefined ? { lockWaitMs } : {}),
  logLevel: values['log-level'] ?? 'warn',
});
process.stdout.write(`${JSON.stringify({ service: name, url: service.url })}\n`);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    service.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`${String(err)}\n`);
        process.exit(1);
      },
    );
  });
}
