/**
 * The lab's commands: the e-commerce demo cluster, the benchmark with its null baseline, the chaos run,
 * and one example service as a process. `txmesh demo|bench|chaos|service|null-echo` hands over to here
 * when @txmesh/lab is installed; `txmesh-lab` runs it directly.
 *
 * A command loads its own modules when it runs: an example service started by a cluster harness does not
 * load the bench, the chaos run or the client, so it starts sooner and holds less memory.
 */
import { DEFAULT_CATALOG, ECOMMERCE_SERVICES, slowFromEnv, startEcommerceService, type EcommerceService } from '@txmesh/example-ecommerce';
// The roles' kit alone: the package's index would also load the operator command and the injector.
import { FlagReader, parseArgs, serve, telemetryFlags, UsageError } from 'txmesh/roles';
import { readFileSync } from 'node:fs';
import { DeadlockMode, parseKeyList } from '@txmesh/protocol';
import type { IsolationRetry, IsolationWorkload } from './isolation-bench.ts';
import type { TempPostgresOptions } from './temp-postgres.ts';

/** --key-file of an example service: its participant routes then take only its sidecar. */
function readKeyFile(file: string): string[] {
  try {
    return parseKeyList(readFileSync(file, 'utf8'), `--key-file ${file}`);
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

const USAGE = `usage: txmesh <command> [flags]   (the lab: runs from the txmesh repository)

commands:
  demo         start the e-commerce cluster on loopback, place orders, check invariants, stop
               --orders N (2000)  --concurrency C (64)  --shards S (1)  --seed N (1)  --json
               --pg: payment on PostgreSQL (native two-phase commit, a throw-away server)  --pg-bin DIR
               catalog: --skus N (200) --stock N per sku (20) --accounts N (500) --balance N per account (500)
  bench        measure the cluster: closed-loop orders against a null fastify baseline; JSON last line
               --concurrency C (1000)  --duration SEC (20)  --warmup SEC (5)  --shards S (1)  --seed N (1)
               --naive (batching, group commit, scheduler off)  --compare (optimised and naive)
               --slow-service NAME (aware vs blind)  --slow-ms MS (20)  --slow-cpu-ms MS per item (1)
               --probe SEC (5, concurrency-1 latency after the main run; 0 skips)  --json
               --startup-rounds N (5: each role spawned alone N times first, median time to ready and idle RSS; 0 skips)
               --startup-only (only that probe: time and CPU to ready, idle RSS, their targets)
               --loads (instead: concurrency 1 with 1 and 4 services, 64, open loop at 50% and 80% of that peak,
               against the null echo, the physical path and a local SQLite baseline; --duration/--warmup per load)
               --telemetry (three clusters take turns: metrics only, no OpenTelemetry SDK, every span exported over OTLP;
                 median throughput ratios of the rounds)
               --telemetry-rounds N (5: windows per mode with --telemetry, together --duration long)
               --loads-warmup SEC (20: unmeasured orders at concurrency 8 on the --loads cluster before its first load)
               --trace-sample PERCENT (100: the OTLP run traces that share of transactions, parentbased_traceidratio)
  bench-isolation
               the same contended workloads (Zipf-skewed keys), same seed, under each deadlock mode; JSON last line
               --workloads orders,transfers  --modes detect,wait-die,timeout  --concurrency C (32)  --duration SEC (10)
               --warmup SEC (2)  --shards S (2)  --seed N (1)  --accounts N per service (1000)  --theta X (0.99)
               --lock-wait MS (1000)  --timeout MS (5000)  --json
               --retry same|fresh (same: a transaction that lost a lock is placed again with the same keys; fresh: the next is drawn)
  bench-overload
               more clients than a shard serves, participants answering slowly, probes on fresh connections;
               JSON last line: probe latency, answers by code, requests left unanswered (resets)
               --clients N (4000)  --max-connections N (1000)  --duration SEC (20)  --slow-ms MS (1000)  --probe-every MS (100)
               --probe-port (probe the shard on its own --probe-port instead of its main port)
  bank         run a bank service (the isolation benchmark's participant): <name> --port P (0) --db FILE --key-file FILE --metrics-port P
               --deadlock detect|wait-die|timeout (detect)  --lock-wait MS (1000)  --accounts N (1000)  --balance N (1000000)
  null-echo    the benchmark's null baseline: answers POST /v1/transactions at once  --port P (0)
  null-sidecar null participants for measuring the coordinator alone: registers each service with every shard and
               answers every batch at once (prepare yes, commit/rollback acknowledged), keeping nothing
               --coordinator URL[,URL...] (index = shard)  --services a,b,... (inventory,payment,order,shipping)  --port P (0)
               --secret-file FILE (shards with credentials: it derives each service's key to register as it)
  chaos        the e-commerce cluster with a fault proxy on every link: orders at full speed while members
               are SIGKILLed and restarted and links cut and healed; then heal, quiesce, verify; exit 1 on any violation
               --duration SEC (60)  --seed N (1)  --shards S (2)  --concurrency C (32)  --fault-every MS (1000)  --min-kills N (0: run on past the duration, up to 3x, until N kills)  --json
               --pg: payment on PostgreSQL (native two-phase commit), checked to leave nothing in pg_prepared_xacts  --pg-bin DIR
               catalog: --skus N (200) --stock N per sku (20) --accounts N (500) --balance N per account (500)
  service      run an example e-commerce service (${ECOMMERCE_SERVICES.join(', ')})
               <name> --port P (0) --db FILE (required) [--catalog JSON] --key-file FILE (its service key) --metrics-port P (9464, or a free port when taken; 0 = any)
               payment --pg postgres://… runs it on PostgreSQL in native two-phase-commit mode instead

every role: --log-level fatal|error|warn|info|debug|trace|silent (warn; env TXMESH_LOG_LEVEL);
            log lines are JSON (pino) on stderr, each naming its role ("name":"service-inventory")
`;

/** --pg [--pg-bin DIR]: the payment service on a throw-away PostgreSQL server (see Cluster's `postgres`). */
function postgresFlags(f: FlagReader): { postgres?: TempPostgresOptions } {
  const enabled = f.bool('pg');
  const binDir = f.optionalString('pg-bin');
  if (!enabled) {
    if (binDir !== undefined) throw new UsageError('--pg-bin needs --pg');
    return {};
  }
  return { postgres: binDir === undefined ? {} : { binDir } };
}

export async function labMain(argv: string[]): Promise<number> {
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
          ...postgresFlags(f),
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
        const { formatSummary, runDemo } = await import('./demo.ts');
        const summary = await runDemo({ ...options, out, progress: process.stderr });
        out.write(`${formatSummary(summary)}\n`);
        if (options.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
        return summary.invariantsOk ? 0 : 1;
      }
      case 'bench': {
        const slow = f.optionalString('slow-service');
        if (slow !== undefined && !ECOMMERCE_SERVICES.includes(slow as EcommerceService)) {
          throw new UsageError(`--slow-service must be one of ${ECOMMERCE_SERVICES.join(', ')}`);
        }
        const options = {
          concurrency: f.int('concurrency', 1000, 1, 100_000),
          durationSec: f.int('duration', 20, 1, 3600),
          warmupSec: f.int('warmup', 5, 0, 600),
          shards: f.int('shards', 1, 1, 64),
          seed: f.int('seed', 1),
          naive: f.bool('naive'),
          compare: f.bool('compare'),
          slowMs: f.int('slow-ms', 20, 0, 60_000),
          slowCpuMs: f.int('slow-cpu-ms', 1, 0, 1000),
          probeSec: f.int('probe', 5, 0, 600),
          startupRounds: f.int('startup-rounds', 5, 0, 100),
          telemetry: f.bool('telemetry'),
          traceSamplePercent: f.int('trace-sample', 100, 1, 100),
          telemetryRounds: f.int('telemetry-rounds', 5, 1, 100),
          loadsWarmupSec: f.int('loads-warmup', 20, 0, 600),
          ...(slow !== undefined ? { slowService: slow as EcommerceService } : {}),
        };
        const json = f.bool('json');
        const startupOnly = f.bool('startup-only');
        const loads = f.bool('loads');
        f.done();
        if (startupOnly) return await benchStartupOnly(Math.max(options.startupRounds, 1), json);
        if (loads) {
          const [{ runLoadsBench }, { formatTargetList }] = await Promise.all([import('./bench-loads.ts'), import('./bench-format.ts')]);
          const report = await runLoadsBench({ ...options, out: process.stderr }, (line) => void process.stderr.write(`${line}\n`));
          process.stderr.write(`targets (issue 18):\n${formatTargetList(report.targets)}\n`);
          process.stdout.write(json ? `${JSON.stringify(report)}\n` : `${JSON.stringify(report, null, 2)}\n`);
          return 0;
        }
        // The JSON object is the last line of stdout; everything for people goes to stderr.
        const [{ runBench }, { formatTargets }] = await Promise.all([import('./bench.ts'), import('./bench-format.ts')]);
        const report = await runBench({ ...options, out: process.stderr });
        process.stderr.write(`targets (issues 6 and 17):\n${formatTargets(report)}\n`);
        process.stdout.write(json ? `${JSON.stringify(report)}\n` : `${JSON.stringify(report, null, 2)}\n`);
        // Figures from a cluster that lost or split an outcome are not results.
        if (!report.invariantsOk) process.stderr.write(report.inconsistent ? 'CONSISTENCY CHECK FAILED\n' : 'consistency not checked: delivery still running at the end\n');
        return report.inconsistent ? 1 : 0;
      }
      case 'bench-overload': {
        const options = {
          clients: f.int('clients', 4000, 1, 100_000),
          maxConnections: f.int('max-connections', 1000, 1, 1_000_000),
          durationSec: f.int('duration', 20, 1, 3600),
          slowMs: f.int('slow-ms', 1000, 0, 60_000),
          probeEveryMs: f.int('probe-every', 100, 10, 60_000),
          probePort: f.bool('probe-port'),
        };
        f.done();
        const { runOverloadBench } = await import('./overload-bench.ts');
        const report = await runOverloadBench({ ...options, out: process.stderr });
        process.stdout.write(`${JSON.stringify(report)}\n`);
        return 0;
      }
      case 'bench-isolation': {
        const { ISOLATION_RETRIES, ISOLATION_WORKLOADS, runIsolationBench } = await import('./isolation-bench.ts');
        const list = <T extends string>(name: string, allowed: readonly T[], fallback: readonly T[]): T[] => {
          const raw = f.optionalString(name);
          if (raw === undefined) return [...fallback];
          const items = raw.split(',').map((x) => x.trim());
          for (const item of items) if (!(allowed as readonly string[]).includes(item)) throw new UsageError(`--${name}: "${item}" is not one of ${allowed.join(', ')}`);
          return items as T[];
        };
        const theta = Number(f.string('theta', '0.99'));
        if (!Number.isFinite(theta) || theta < 0 || theta > 5) throw new UsageError('--theta must be a number from 0 to 5');
        if (!(ISOLATION_RETRIES as readonly string[]).includes(f.string('retry', 'same'))) throw new UsageError(`--retry must be one of ${ISOLATION_RETRIES.join(', ')}`);
        const options = {
          workloads: list<IsolationWorkload>('workloads', ISOLATION_WORKLOADS, ISOLATION_WORKLOADS),
          modes: list<DeadlockMode>('modes', Object.values(DeadlockMode), Object.values(DeadlockMode)),
          concurrency: f.int('concurrency', 32, 1, 10_000),
          durationSec: f.int('duration', 10, 1, 3600),
          warmupSec: f.int('warmup', 2, 0, 600),
          shards: f.int('shards', 2, 1, 64),
          seed: f.int('seed', 1),
          accounts: f.int('accounts', 1000, 1, 10_000_000),
          theta,
          lockWaitMs: f.int('lock-wait', 1000, 0, 600_000),
          timeoutMs: f.int('timeout', 5000, 10, 600_000),
          retry: f.string('retry', 'same') as IsolationRetry,
        };
        const json = f.bool('json');
        f.done();
        const report = await runIsolationBench({ ...options, out: process.stderr });
        process.stdout.write(json ? `${JSON.stringify(report)}\n` : `${JSON.stringify(report, null, 2)}\n`);
        return 0;
      }
      case 'bank': {
        const name = rest[0];
        if (name === undefined) throw new UsageError('bank needs a service name');
        const options = {
          port: f.int('port', 0, 0, 65535),
          host: f.string('host', '127.0.0.1'),
          dbPath: f.string('db'),
          deadlock: f.choice('deadlock', Object.values(DeadlockMode), DeadlockMode.DETECT),
          lockWaitMs: f.int('lock-wait', 1000, 0, 600_000),
          accounts: { count: f.int('accounts', 1000, 0, 10_000_000), balance: f.int('balance', 1_000_000, 0, Number.MAX_SAFE_INTEGER) },
        };
        f.string('log-level', 'warn');
        // A bank service is an application like the example's: its own providers, /metrics on --metrics-port.
        const telemetry = telemetryFlags(f, `bank-${name}`);
        const keyFile = f.optionalString('key-file');
        f.done();
        const { startBankService } = await import('./bank-service.ts');
        const keys = keyFile === undefined ? undefined : readKeyFile(keyFile);
        return await serve(() => startBankService(name, { ...options, ...(keys ? { keys } : {}) }), { telemetry });
      }
      case 'null-echo': {
        const options = { port: f.int('port', 0, 0, 65535), host: f.string('host', '127.0.0.1'), logLevel: f.logLevel() };
        f.done();
        const { startNullEcho } = await import('./null-echo.ts');
        return await serve(() => startNullEcho(options));
      }
      case 'null-sidecar': {
        const coordinatorUrls = f.string('coordinator', '').split(',').filter((u) => u.length > 0);
        if (coordinatorUrls.length === 0) throw new UsageError('null-sidecar needs --coordinator URL[,URL...]');
        const services = f.string('services', ECOMMERCE_SERVICES.join(',')).split(',').filter((s) => s.length > 0);
        const options = { coordinatorUrls, services, port: f.int('port', 0, 0, 65535), host: f.string('host', '127.0.0.1'), logLevel: f.logLevel() };
        const secretFile = f.optionalString('secret-file');
        f.done();
        const secret = secretFile === undefined ? undefined : readKeyFile(secretFile)[0]!;
        const { startNullSidecar } = await import('./null-sidecar.ts');
        return await serve(() => startNullSidecar({ ...options, ...(secret === undefined ? {} : { secret }) }));
      }
      case 'chaos': {
        const options = {
          durationSec: f.int('duration', 60, 1, 86_400),
          seed: f.int('seed', 1),
          shards: f.int('shards', 2, 1, 64),
          concurrency: f.int('concurrency', 32, 1, 10_000),
          faultEveryMs: f.int('fault-every', 1000, 50, 600_000),
          minKills: f.int('min-kills', 0, 0, 100_000),
          ...postgresFlags(f),
          catalog: {
            skus: f.int('skus', DEFAULT_CATALOG.skus, 1, 1_000_000),
            stockPerSku: f.int('stock', DEFAULT_CATALOG.stockPerSku, 0, 1_000_000_000),
            accounts: f.int('accounts', DEFAULT_CATALOG.accounts, 1, 1_000_000),
            balancePerAccount: f.int('balance', DEFAULT_CATALOG.balancePerAccount, 0, 1_000_000_000),
          },
        };
        const json = f.bool('json');
        f.done();
        const { runChaos } = await import('./chaos.ts');
        const summary = await runChaos({ ...options, progress: process.stderr });
        const { problems, ...figures } = summary;
        const human = json ? process.stderr : process.stdout;
        human.write(`${Object.entries(figures).map(([k, v]) => `${k.padEnd(20)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('\n')}\n`);
        for (const problem of problems) human.write(`  problem: ${problem}\n`);
        // With --json the summary must be the last line of stdout.
        if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
        return summary.invariantsOk ? 0 : 1;
      }
      case 'service': {
        const name = rest[0];
        if (!ECOMMERCE_SERVICES.includes(name as EcommerceService)) {
          throw new UsageError(`service name must be one of ${ECOMMERCE_SERVICES.join(', ')}`);
        }
        const catalogJson = f.string('catalog', '{}');
        const pgUrl = f.optionalString('pg');
        const options = {
          port: f.int('port', 0, 0, 65535),
          host: f.string('host', '127.0.0.1'),
          dbPath: pgUrl === undefined ? f.string('db') : f.string('db', ''),
          logLevel: f.logLevel(),
          ...(pgUrl === undefined ? {} : { pgUrl }),
        };
        // The example service is an application: it registers its own OpenTelemetry providers, which the
        // participant SDK inside it then uses.
        const telemetry = telemetryFlags(f, `example-${name}`);
        const keyFile = f.optionalString('key-file');
        f.done();
        const keys = keyFile === undefined ? undefined : readKeyFile(keyFile);
        let catalog: object;
        try {
          catalog = JSON.parse(catalogJson) as object;
        } catch {
          throw new UsageError('--catalog must be a JSON object');
        }
        // TXMESH_SLOW_MS / TXMESH_SLOW_CPU_MS: set by `txmesh bench --slow-service` on one service.
        const slowness = slowFromEnv();
        return await serve(() => startEcommerceService(name as EcommerceService, { ...options, catalog, ...(slowness ? { slow: slowness } : {}), ...(keys ? { keys } : {}) }), { telemetry });
      }
      case undefined:
      case 'help':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown lab command "${command}"`);
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

/** `txmesh bench --startup-only`: the startup probe alone, with its targets; the JSON object is the last line of stdout. */
async function benchStartupOnly(rounds: number, json: boolean): Promise<number> {
  const [{ probeStartup }, { idleSidecarTarget, startupTargets }, { loadavg }, { MEMBERS_CHECKOUT }] = await Promise.all([
    import('./bench-startup.ts'),
    import('./bench-targets.ts'),
    import('node:os'),
    import('./cluster.ts'),
  ]);
  const say = (line: string): void => void process.stderr.write(`${line}\n`);
  const loadBefore = loadavg()[0] ?? 0;
  if (MEMBERS_CHECKOUT) say(`members run from ${MEMBERS_CHECKOUT} (TXMESH_MEMBERS_CHECKOUT)`);
  const startup = await probeStartup(rounds, say);
  const targets = [...startupTargets(startup.startupMs, `median of ${rounds} spawns, each role alone`), idleSidecarTarget(startup.idleRssMb)];
  const { formatTargetList } = await import('./bench-format.ts');
  say(formatTargetList(targets));
  const report = { loadavg1m: { before: Math.round(loadBefore * 100) / 100, after: Math.round((loadavg()[0] ?? 0) * 100) / 100 }, ...(MEMBERS_CHECKOUT ? { membersCheckout: MEMBERS_CHECKOUT } : {}), startup, targets };
  process.stdout.write(json ? `${JSON.stringify(report)}\n` : `${JSON.stringify(report, null, 2)}\n`);
  return 0;
}
