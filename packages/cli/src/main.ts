/**
 * The `txmesh` command: run a coordinator shard, a sidecar or an example service as a process, or the
 * whole demo cluster. Each long-running role prints "TXMESH_READY <url>" on stdout once it listens,
 * and shuts down cleanly on SIGTERM/SIGINT.
 */
import { startCoordinator } from '@txmesh/coordinator';
import { startSidecar } from '@txmesh/sidecar';
import { DEFAULT_CATALOG, ECOMMERCE_SERVICES, startEcommerceService, type EcommerceService } from '@txmesh/example-ecommerce';
import { FlagReader, parseArgs, UsageError } from './args.ts';
import { formatSummary, runDemo } from './demo.ts';

const USAGE = `usage: txmesh <command> [flags]

commands:
  demo         start the e-commerce cluster on loopback, place orders, check invariants, stop
               --orders N (2000)  --concurrency C (64)  --shards S (1)  --seed N (1)  --json
               catalog: --skus N (200) --stock N per sku (20) --accounts N (500) --balance N per account (500)
  coordinator  run one coordinator shard
               --shard K (0)  --shards S (1)  --port P (7000)  --host H (127.0.0.1)  --data DIR (required)
  sidecar      run a sidecar next to a service
               --service NAME  --service-url URL  --coordinator URL[,URL...] (index = shard)
               --port P (0)  --host H (127.0.0.1)  --data DIR (required)
  service      run an example e-commerce service (${ECOMMERCE_SERVICES.join(', ')})
               <name> --port P (0) --db FILE (required) [--catalog JSON]
`;

type Closable = { url: string; close(): Promise<void> };

async function serve(start: () => Promise<Closable>): Promise<number> {
  const running = await start();
  process.stdout.write(`TXMESH_READY ${running.url}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await running.close();
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const { positionals, flags } = parseArgs(argv);
  const [command, ...rest] = positionals;
  const f = new FlagReader(flags);
  try {
    switch (command) {
      case 'demo': {
        const options = {
          orders: f.int('orders', 2000, 1, 10_000_000),
          concurrency: f.int('concurrency', 64, 1, 100_000),
          shards: f.int('shards', 1, 1, 64),
          seed: f.int('seed', 1),
          json: f.bool('json'),
          catalog: {
            skus: f.int('skus', DEFAULT_CATALOG.skus, 1, 1_000_000),
            stockPerSku: f.int('stock', DEFAULT_CATALOG.stockPerSku, 0, 1_000_000_000),
            accounts: f.int('accounts', DEFAULT_CATALOG.accounts, 1, 1_000_000),
            balancePerAccount: f.int('balance', DEFAULT_CATALOG.balancePerAccount, 0, 1_000_000_000),
          },
        };
        f.done();
        // With --json the summary object must be the last line of stdout; human text goes to stderr.
        const out = options.json ? process.stderr : process.stdout;
        const summary = await runDemo({ ...options, out, progress: process.stderr });
        out.write(`${formatSummary(summary)}\n`);
        if (options.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
        return summary.invariantsOk ? 0 : 1;
      }
      case 'coordinator': {
        const options = {
          shard: f.int('shard', 0, 0, 9999),
          shards: f.int('shards', 1, 1, 10_000),
          port: f.int('port', 7000, 0, 65535),
          host: f.string('host', '127.0.0.1'),
          dataDir: f.string('data'),
          logLevel: f.string('log-level', process.env.TXMESH_LOG_LEVEL ?? 'warn'),
        };
        f.done();
        if (options.shard >= options.shards) throw new UsageError('--shard must be less than --shards');
        return await serve(() => startCoordinator(options));
      }
      case 'sidecar': {
        const options = {
          service: f.string('service'),
          serviceUrl: f.string('service-url'),
          coordinatorUrls: f.string('coordinator').split(',').map((u) => u.trim()).filter(Boolean),
          port: f.int('port', 0, 0, 65535),
          host: f.string('host', '127.0.0.1'),
          dataDir: f.string('data'),
          logLevel: f.string('log-level', process.env.TXMESH_LOG_LEVEL ?? 'warn'),
        };
        f.done();
        return await serve(() => startSidecar(options));
      }
      case 'service': {
        const name = rest[0];
        if (!ECOMMERCE_SERVICES.includes(name as EcommerceService)) {
          throw new UsageError(`service name must be one of ${ECOMMERCE_SERVICES.join(', ')}`);
        }
        const catalogJson = f.string('catalog', '{}');
        const options = { port: f.int('port', 0, 0, 65535), host: f.string('host', '127.0.0.1'), dbPath: f.string('db') };
        f.done();
        let catalog: object;
        try {
          catalog = JSON.parse(catalogJson) as object;
        } catch {
          throw new UsageError('--catalog must be a JSON object');
        }
        return await serve(() => startEcommerceService(name as EcommerceService, { ...options, catalog }));
      }
      case undefined:
      case 'help':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`txmesh: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    process.stderr.write(`txmesh: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}
