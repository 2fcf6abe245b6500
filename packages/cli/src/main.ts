/**
 * The `txmesh` operator command: run a coordinator shard or a sidecar as a process, and look into a
 * running cluster (begin, status, in-doubt, services). Each long-running role prints "TXMESH_READY <url>"
 * on stdout once it is ready (a sidecar: once every shard accepted its registration), logs pino JSON
 * lines on stderr, and shuts down cleanly on SIGTERM/SIGINT.
 *
 * The lab commands (demo, bench, chaos, service, null-echo) live in @txmesh/lab, which depends on the
 * example services; they are loaded from it when it is installed (as in the repository), so the
 * operator command never depends on the example.
 */
import type { ServiceTimeouts } from '@txmesh/coordinator';
import { DEFAULT_MAX_CONNECTIONS, DeadlockMode } from '@txmesh/protocol';
import { FlagReader, parseArgs, UsageError } from './args.ts';
import { CLIENT_COMMANDS, runClientCommand } from './client-commands.ts';
import { DEFAULT_READY_TIMEOUT_MS, envSwitch, serve } from './serve.ts';
import { shardFromPodName } from './shard-from-pod-name.ts';
import type { SidecarTemplate } from './injector/sidecar-template.ts';
import { telemetryFlags } from './telemetry-options.ts';
import { issueCredential } from './issue-credential.ts';
import { keyFlags, tlsFlags, warnInsecure } from './security-flags.ts';
import { applyHeapPolicy } from './heap-policy.ts';

const LAB_COMMANDS = new Set(['demo', 'bench', 'bench-isolation', 'chaos', 'service', 'bank', 'null-echo', 'null-sidecar', 'bench-overload']);

const USAGE = `usage: txmesh <command> [flags]

commands:
  coordinator  run one coordinator shard
               --shard K (0)  --shards S (1)  --port P (7000)  --host H (127.0.0.1)  --data DIR (required)
               --shard-from-pod-name NAME (instead of --shard: the StatefulSet ordinal, e.g. txmesh-coordinator-2)
               --cluster NAME (txmesh; stamped into the decision log with shard and shards, checked at start)
               --registration-lease MS (30000: a service unseen this long takes no new transactions)
               --in-doubt-after MS (10000)  --alert-webhook URL  --prune-interval MS (5000, 0 = off)
               --idempotency-retention MS (3600000)  --deadlock detect|wait-die|timeout (detect: abort the
               youngest of each wait-for cycle; wait-die/timeout: ignore wait reports)  --service-timeouts JSON, e.g.
               '{"payment":{"prepareTimeoutMs":800,"deliveryTimeoutMs":2000}}'   env TXMESH_GROUP_COMMIT=off
               env TXMESH_HEAP_GROWING_PERCENT (50; 0 = V8's own factor, up to 4x on a large host): the old space
               grows this much past the live heap between full collections
               env TXMESH_SEMI_SPACE_MB (4, 8 when it exports traces; 1, 2, 8, 16, or 0 = V8's own, 16): each of the
               young generation's two semi-spaces grows to at most this size (both 0: more memory, a little less CPU;
               docs/benchmarks.md)
               --secret-file FILE (the cluster secret(s); required unless --insecure)
  sidecar      run a sidecar next to a service
               --service NAME  --service-url URL  --coordinator URL[,URL...] (index = shard)
               --port P (0)  --host H (127.0.0.1)  --data DIR (required)
               --advertise-url URL (the URL shards call, e.g. a proxy in front; default http://host:port)
               --ready-timeout MS (60000; 0 = no bound): TXMESH_READY is printed once every shard accepted
               the registration; not ready by then, it exits 1 naming the shards it waited for
               --key-file FILE (the service key(s) of --service; required unless --insecure)
  injector     the Kubernetes mutating admission webhook that adds the sidecar to annotated pods
               --tls-cert FILE --tls-key FILE (required)  --sidecar-template FILE (required, JSON from the chart)
               --port P (8443)  --host H (127.0.0.1)
  credentials  issue keys (printed on stdout, one line)
               secret                                  a new cluster secret
               service NAME --secret-file FILE         the key of service NAME (its sidecar and the service)
               client NAME --secret-file FILE          the key of client NAME (an application that begins transactions)
               authorization client NAME --key-file FILE   the Authorization header value that key makes (for curl)

look into a running cluster (--coordinator URL[,URL...]: every shard, in shard order; prints JSON):
  begin        run the transaction read as JSON from stdin, on the shard that owns its idempotencyKey
               exit 0 committed, 3 aborted, 1 refused or unreachable (the error body on stderr)
  status       <txId>: the transaction's state and branches, from the shard its id names
  in-doubt     every shard's branches whose commit/rollback is unacknowledged  --older-than MS
  services     every shard's registered services, their resource reports and scheduler lanes
               --client NAME --key-file FILE: the client credential sent (needed unless the shards run --insecure)

  demo, bench, bench-isolation, chaos, service, bank, null-echo, null-sidecar, bench-overload
               the lab: the e-commerce demo cluster, the benchmark and the chaos run (from a clone of the
               repository, where @txmesh/lab is installed: \`npx txmesh demo --help\`)

coordinator and sidecar: --probe-port P also serves the health and readiness probes on P, from a thread of their own
               (no wait behind clients or a busy event loop; 503 TXM_STALLED once the main loop is silent 10 s, 5 s for
               readiness). Unset: the main port only
               --max-connections N (1000): past N open connections every request but the probes is
               answered 429 TXM_OVERLOADED (Retry-After, Connection: close) at once, never reset
               --insecure (no credentials: logs a warning; anyone who can reach the port may call it)
               --tls-cert FILE --tls-key FILE (PEM: serve HTTPS; clients trust its CA via NODE_EXTRA_CA_CERTS)
every role: --log-level fatal|error|warn|info|debug|trace|silent (warn; env TXMESH_LOG_LEVEL);
            log lines are JSON (pino) on stderr, each naming its role ("name":"sidecar-inventory") and, inside a
            transaction, its txId, trace_id and span_id
            --metrics-port P (9464, or a free port when 9464 is taken; 0 = any free port) --metrics-host H (127.0.0.1): GET /metrics
            OpenTelemetry from the standard OTEL_* variables, e.g. OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318
            (traces are exported only when OTEL_TRACES_EXPORTER or an OTLP endpoint is set; OTEL_SDK_DISABLED=true: no SDK)
`;

const onBadEnv = (message: string): Error => new UsageError(message);

/** --alert-webhook URL and --service-timeouts JSON, checked here so a typo fails at start. */
function optionalCoordinatorFlags(f: FlagReader, validateServiceTimeouts: (value: unknown) => ServiceTimeouts): { alertWebhookUrl?: string; serviceTimeouts?: ServiceTimeouts } {
  const out: { alertWebhookUrl?: string; serviceTimeouts?: ServiceTimeouts } = {};
  const webhook = f.optionalString('alert-webhook');
  if (webhook !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(webhook);
    } catch {
      // reported below
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new UsageError('--alert-webhook must be an http(s) URL');
    out.alertWebhookUrl = webhook;
  }
  const timeouts = f.optionalString('service-timeouts');
  if (timeouts !== undefined) {
    try {
      out.serviceTimeouts = validateServiceTimeouts(JSON.parse(timeouts));
    } catch (err) {
      throw new UsageError(`--service-timeouts: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return out;
}

/** The lab's entry point, when @txmesh/lab is installed next to this command. */
async function runLab(argv: string[]): Promise<number> {
  let lab: { labMain(argv: string[]): Promise<number> };
  try {
    // Its entry point alone: the package's index also loads the cluster harness, the bench and pg.
    lab = (await import('@txmesh/lab/main' as string)) as typeof lab;
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    process.stderr.write(
      `txmesh: "${argv[0]}" is a lab command: it runs the example services and lives in @txmesh/lab, which is not installed here.\n` +
        'Clone the txmesh repository and run it there (npm install && npx txmesh demo).\n',
    );
    return 2;
  }
  return lab.labMain(argv);
}

export async function main(argv: string[]): Promise<number> {
  const { positionals, flags } = parseArgs(argv);
  const [command] = positionals;
  if (command !== undefined && LAB_COMMANDS.has(command)) return runLab(argv);
  const f = new FlagReader(flags);
  try {
    if (command !== undefined && CLIENT_COMMANDS.has(command)) return await runClientCommand(command, positionals.slice(1), f);
    switch (command) {
      case 'coordinator': {
        // Each role loads only its own modules: the client commands and the other roles start faster without the rest.
        const { startCoordinator, validateServiceTimeouts } = await import('@txmesh/coordinator');
        const podName = f.optionalString('shard-from-pod-name');
        if (podName !== undefined && f.optionalString('shard') !== undefined) throw new UsageError('give --shard or --shard-from-pod-name, not both');
        const options = {
          shard: podName === undefined ? f.int('shard', 0, 0, 9999) : shardFromPodName(podName),
          shards: f.int('shards', 1, 1, 10_000),
          cluster: f.string('cluster', 'txmesh'),
          port: f.int('port', 7000, 0, 65535),
          host: f.string('host', '127.0.0.1'),
          dataDir: f.string('data'),
          logLevel: f.logLevel(),
          // TXMESH_SCHEDULER=off / TXMESH_BATCHING=off: resource-blind and unbatched, for comparison.
          scheduler: envSwitch('TXMESH_SCHEDULER', onBadEnv),
          batching: envSwitch('TXMESH_BATCHING', onBadEnv),
          // TXMESH_GROUP_COMMIT=off: every decision record fsync'd on its own (naive benchmark mode).
          groupCommit: envSwitch('TXMESH_GROUP_COMMIT', onBadEnv),
          // TXMESH_COORDINATOR_CHANNEL=off: every batch to a sidecar as an HTTP request, no batch channel.
          sidecarChannel: envSwitch('TXMESH_COORDINATOR_CHANNEL', onBadEnv),
          inDoubtAfterMs: f.int('in-doubt-after', 10_000, 0, 86_400_000),
          registrationLeaseMs: f.int('registration-lease', 30_000, 1, 86_400_000),
          pruneIntervalMs: f.int('prune-interval', 5_000, 0, 86_400_000),
          idempotencyRetentionMs: f.int('idempotency-retention', 3_600_000, 0, 365 * 86_400_000),
          deadlock: f.choice('deadlock', Object.values(DeadlockMode), DeadlockMode.DETECT),
          ...optionalCoordinatorFlags(f, validateServiceTimeouts),
          maxConnections: f.int('max-connections', DEFAULT_MAX_CONNECTIONS, 1, 1_000_000),
          ...(f.optionalString('probe-port') === undefined ? {} : { probePort: f.int('probe-port', 0, 0, 65535) }),
          ...tlsFlags(f),
        };
        const { keys, insecure } = keyFlags(f, 'secret-file');
        if (options.shard >= options.shards) throw new UsageError('--shard must be less than --shards');
        const telemetry = telemetryFlags(f, `txmesh-coordinator-${options.shard}`);
        f.done();
        // Before the shard allocates: its young generation capped, and with a percentage set its old space nearer what is live.
        applyHeapPolicy(process.env, onBadEnv);
        if (insecure) warnInsecure(`coordinator-${options.shard}`);
        return await serve(() => startCoordinator({ ...options, ...(keys ? { secrets: keys } : {}) }), { telemetry });
      }
      case 'sidecar': {
        const { startSidecar } = await import('@txmesh/sidecar');
        const options = {
          service: f.string('service'),
          serviceUrl: f.string('service-url'),
          coordinatorUrls: f.coordinatorUrls(),
          port: f.int('port', 0, 0, 65535),
          host: f.string('host', '127.0.0.1'),
          dataDir: f.string('data'),
          advertiseUrl: f.optionalString('advertise-url'),
          logLevel: f.logLevel(),
          batching: envSwitch('TXMESH_BATCHING', onBadEnv),
          forcePreparedRecords: envSwitch('TXMESH_SIDECAR_FORCED_RECORDS', onBadEnv),
          batchChannel: envSwitch('TXMESH_BATCH_CHANNEL', onBadEnv),
          maxConnections: f.int('max-connections', DEFAULT_MAX_CONNECTIONS, 1, 1_000_000),
          ...(f.optionalString('probe-port') === undefined ? {} : { probePort: f.int('probe-port', 0, 0, 65535) }),
          ...tlsFlags(f),
        };
        const readyTimeoutMs = f.int('ready-timeout', DEFAULT_READY_TIMEOUT_MS, 0, 86_400_000);
        const { keys, insecure } = keyFlags(f, 'key-file');
        const telemetry = telemetryFlags(f, `txmesh-sidecar-${options.service}`);
        f.done();
        // The sidecar too: at concurrency 1000 V8's own young generation (16 MB semi-spaces) held it past 100 MB.
        applyHeapPolicy(process.env, onBadEnv);
        if (insecure) warnInsecure(`sidecar-${options.service}`);
        return await serve(() => startSidecar({ ...options, ...(keys ? { keys } : {}) }), { readyTimeoutMs, role: `the sidecar of ${options.service}`, telemetry });
      }
      case 'credentials': {
        process.stdout.write(`${issueCredential(positionals.slice(1), f)}\n`);
        return 0;
      }
      case 'injector': {
        const { startInjector } = await import('./injector/injector-server.ts');
        const { loadSidecarTemplate, SidecarTemplateError } = await import('./injector/sidecar-template.ts');
        const tls = { certFile: f.string('tls-cert'), keyFile: f.string('tls-key') };
        const templateFile = f.string('sidecar-template');
        const options = { tls, port: f.int('port', 8443, 0, 65535), host: f.string('host', '127.0.0.1'), logLevel: f.logLevel() };
        f.done();
        let template: SidecarTemplate;
        try {
          template = loadSidecarTemplate(templateFile);
        } catch (err) {
          if (err instanceof SidecarTemplateError) throw new UsageError(`--sidecar-template: ${err.message}`);
          throw err;
        }
        return await serve(() => startInjector({ ...options, template }));
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
