/**
 * Starts a txmesh cluster as real processes on loopback: coordinator shards, the example services and
 * a sidecar next to each. Used by `txmesh demo` and by the cross-process tests, which kill members with
 * SIGKILL and restart them on the same port and data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ECOMMERCE_SERVICES, type CatalogOptions, type EcommerceService } from '@txmesh/example-ecommerce';
import pg from 'pg';
import { METRICS_PREFIX, READY_PREFIX } from 'txmesh/roles';
import { entryPoint } from 'txmesh/bundle-entry';
import { processCpuMs } from './bench-process.ts';
import { FaultProxy } from './fault-proxy.ts';
import { startTempPostgres, type TempPostgresOptions, type TempPostgres } from './temp-postgres.ts';
import { ClusterCredentials } from './cluster-credentials.ts';

/**
 * The operator command runs coordinators and sidecars; the lab's own bin runs example services and the null
 * echo. TXMESH_MEMBERS_CHECKOUT=<another built checkout> runs that checkout's members under this harness,
 * so two builds are compared by the same load generator and measurements (docs/benchmarks.md).
 */
export const MEMBERS_CHECKOUT = process.env.TXMESH_MEMBERS_CHECKOUT || undefined;
const TXMESH_BIN = MEMBERS_CHECKOUT
  ? join(MEMBERS_CHECKOUT, 'packages', 'cli', 'bin', 'txmesh.mjs')
  : join(dirname(createRequire(import.meta.url).resolve('txmesh/package.json')), 'bin', 'txmesh.mjs');
const LAB_BIN = MEMBERS_CHECKOUT ? join(MEMBERS_CHECKOUT, 'packages', 'lab', 'bin', 'txmesh-lab.mjs') : fileURLToPath(new URL('../bin/txmesh-lab.mjs', import.meta.url));
/** Which build the members' bins run (packages/cli/src/bundle-entry.ts): a figure of start-up depends on it. */
export function memberBuilds(): { txmesh: 'bundle' | 'dist'; lab: 'bundle' | 'dist' } {
  const runs = (bin: string): 'bundle' | 'dist' => (entryPoint(pathToFileURL(join(dirname(bin), '..', '/')), 'main.js').pathname.includes('/bundle/') ? 'bundle' : 'dist');
  return { txmesh: runs(TXMESH_BIN), lab: runs(LAB_BIN) };
}
const CRASH_PRELOAD = fileURLToPath(new URL('./crash-on-step.js', import.meta.url));
const START_TIMEOUT_MS = 30_000;

export type MemberRole = 'coordinator' | 'service' | 'sidecar' | 'null-echo' | 'null-sidecar' | 'bank';

/** One process of the cluster. Keeps its port across restarts so peers keep finding it. */
export class Member {
  readonly name: string;
  readonly role: MemberRole;
  readonly #args: (port: number) => string[];
  readonly #logFile: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #nodeArgs: string[];
  #child: ChildProcess | undefined;
  #log: WriteStream | undefined;
  #port = 0;
  #url = '';
  #startupMs: number | undefined;
  #startupCpuMs: number | undefined;
  #metricsPort = 0;
  #metricsUrl: string | undefined;
  #exited: Promise<void> = Promise.resolve();

  constructor(name: string, role: MemberRole, args: (port: number) => string[], logFile: string, env: NodeJS.ProcessEnv, nodeArgs: string[] = []) {
    this.name = name;
    this.#nodeArgs = nodeArgs;
    this.role = role;
    this.#args = args;
    this.#logFile = logFile;
    this.#env = env;
  }

  get url(): string {
    return this.#url;
  }
  /** Where the member's stdout and stderr (its JSON log lines) go. */
  get logFile(): string {
    return this.#logFile;
  }

  /** GET /metrics of this member (Prometheus), undefined when it runs without telemetry. */
  get metricsUrl(): string | undefined {
    return this.#metricsUrl;
  }
  get pid(): number | undefined {
    return this.#child?.pid;
  }
  /** Milliseconds from the spawn of the last start to its TXMESH_READY line. */
  get startupMs(): number | undefined {
    return this.#startupMs;
  }
  /**
   * CPU time (user + system) the last start spent until its TXMESH_READY line. Unlike startupMs it does not
   * grow when other processes compete for the cores, so it compares builds on a busy machine.
   */
  get startupCpuMs(): number | undefined {
    return this.#startupCpuMs;
  }
  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Starts the process and resolves with its URL once it reports ready. `extraEnv` applies to this start only. */
  async start(extraEnv: NodeJS.ProcessEnv = {}): Promise<string> {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.#log ??= createWriteStream(this.#logFile, { flags: 'a' });
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.#env, ...extraEnv, TXMESH_EXIT_WITH_PARENT: '1' };
    // Crash points cost nothing unless armed: only then is the preload that listens for steps loaded.
    const preload = env.TXMESH_CRASH_AT ? ['--import', CRASH_PRELOAD] : [];
    const bin = this.role === 'coordinator' || this.role === 'sidecar' ? TXMESH_BIN : LAB_BIN;
    const spawnedAt = performance.now();
    // /metrics on a free port, kept across restarts like the member's own port (the null echo has none).
    const metrics = this.role === 'null-echo' || this.role === 'null-sidecar' ? [] : ['--metrics-port', String(this.#metricsPort)];
    const child = spawn(process.execPath, [...this.#nodeArgs, ...preload, bin, this.role, ...this.#args(this.#port), ...metrics], {
      // stdin is a pipe only so that the member notices when this process dies (TXMESH_EXIT_WITH_PARENT).
      stdio: ['pipe', 'pipe', 'pipe'],
      env,
    });
    child.stdin!.on('error', () => {}); // never written; a dead child must not raise EPIPE here
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stderr!.pipe(this.#log, { end: false });
    const url = await new Promise<string>((resolve, reject) => {
      let buffered = '';
      const timer = setTimeout(() => fail(new Error(`${this.name} did not become ready in ${START_TIMEOUT_MS} ms (log: ${this.#logFile})`)), START_TIMEOUT_MS);
      const onExit = (code: number | null, signal: string | null): void =>
        fail(new Error(`${this.name} exited before ready (code ${code}, signal ${signal}); log: ${this.#logFile}`));
      const onData = (chunk: Buffer): void => {
        buffered += chunk.toString('utf8');
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          if (line.startsWith(METRICS_PREFIX)) {
            this.#metricsUrl = line.slice(METRICS_PREFIX.length).trim();
            this.#metricsPort = Number(new URL(this.#metricsUrl).port);
            continue;
          }
          if (line.startsWith(READY_PREFIX)) {
            this.#startupMs = performance.now() - spawnedAt;
            this.#startupCpuMs = processCpuMs(child.pid);
            cleanup();
            resolve(line.slice(READY_PREFIX.length).trim());
            return;
          }
          this.#log!.write(`${line}\n`);
        }
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        child.off('exit', onExit);
        child.stdout!.off('data', onData);
        child.stdout!.pipe(this.#log!, { end: false });
      };
      const fail = (err: Error): void => {
        cleanup();
        child.kill('SIGKILL');
        reject(err);
      };
      child.on('exit', onExit);
      child.stdout!.on('data', onData);
    });
    this.#url = url;
    this.#port = Number(new URL(url).port);
    return url;
  }

  /** Sends a signal and waits for the process to be gone. SIGKILL is a crash: nothing is flushed. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.#child!.kill(signal);
    await this.#exited;
  }

  /** Resolves when the process exits by itself (e.g. at a crash point). */
  exited(): Promise<void> {
    return this.#exited;
  }

  async stop(): Promise<void> {
    if (this.running) {
      const timer = setTimeout(() => this.#child?.kill('SIGKILL'), 5_000);
      await this.kill('SIGTERM');
      clearTimeout(timer);
    }
    // Bounded: a log stream that errored may never call back, and stop() must not hang a test file.
    const log = this.#log;
    this.#log = undefined;
    if (log) await Promise.race([new Promise<void>((resolve) => log.end(resolve)), sleep(2000)]);
  }
}

export interface ClusterOptions {
  shards?: number;
  dataDir?: string;
  catalog?: Partial<CatalogOptions>;
  /** Environment for every member (e.g. crash points, log level). */
  env?: NodeJS.ProcessEnv;
  /** Environment for one member's first start, by member name (e.g. "coordinator-0", "sidecar-inventory"). */
  memberEnv?: Record<string, NodeJS.ProcessEnv>;
  /** Extra node flags for every member, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] to profile a run. */
  nodeArgs?: string[];
  /**
   * Put a fault-injecting proxy on every link: coordinator → sidecar (the sidecar advertises the proxy),
   * sidecar → service and sidecar → each coordinator shard. Reach them with `cluster.link(from, to)`.
   */
  faultProxies?: boolean;
  /**
   * Run the payment service on PostgreSQL in native two-phase-commit mode: the cluster starts a throw-away
   * server (initdb/pg_ctl in a temp folder) before the services and stops it after them.
   */
  postgres?: TempPostgresOptions;
  /** More flags for every coordinator shard, e.g. ['--max-connections', '200']. */
  coordinatorArgs?: string[];
  /** Run every member with --insecure (no credentials). Default false: a fresh secret per cluster. */
  insecure?: boolean;
}

export class Cluster {
  readonly dataDir: string;
  readonly coordinators: Member[] = [];
  readonly services = new Map<EcommerceService, Member>();
  readonly sidecars = new Map<EcommerceService, Member>();
  /** Fault proxies by link name ("sidecar-payment->service-payment"), when started with faultProxies. */
  readonly links = new Map<string, FaultProxy>();
  /** The payment service's PostgreSQL server, when started with `postgres`. */
  postgres: TempPostgres | undefined;
  /** Undefined when the cluster runs --insecure. */
  readonly credentials: ClusterCredentials | undefined;
  readonly #ownsDataDir: boolean;

  private constructor(dataDir: string, ownsDataDir: boolean, insecure: boolean) {
    this.dataDir = dataDir;
    this.#ownsDataDir = ownsDataDir;
    this.credentials = insecure ? undefined : new ClusterCredentials(dataDir);
  }

  /** Headers of the lab client for a coordinator call ({} when insecure). */
  get clientHeaders(): Record<string, string> {
    return this.credentials?.clientHeaders ?? {};
  }

  /** For createTxmeshClient: the lab client's credential, when the cluster has credentials. */
  get clientOptions(): { credential?: { name: string; key: string } } {
    return this.credentials ? { credential: this.credentials.client } : {};
  }

  /** Headers for the control routes (stats) of the sidecar of `service`. */
  sidecarControlHeaders(service: EcommerceService): Record<string, string> {
    return this.credentials?.coordinatorHeaders(service) ?? {};
  }

  /** Headers for the participant routes of `service` itself, as its sidecar sends them. */
  participantHeaders(service: EcommerceService): Record<string, string> {
    return this.credentials?.sidecarHeaders(service) ?? {};
  }

  static async start(options: ClusterOptions = {}): Promise<Cluster> {
    const shards = options.shards ?? 1;
    const ownsDataDir = options.dataDir === undefined;
    const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'txmesh-'));
    mkdirSync(dataDir, { recursive: true });
    const cluster = new Cluster(dataDir, ownsDataDir, options.insecure === true);
    const credentials = cluster.credentials;
    const keyFlag = (service: EcommerceService): string[] => (credentials ? ['--key-file', credentials.serviceKeyFile(service)] : ['--insecure']);
    const env = options.env ?? {};
    const envFor = (name: string): NodeJS.ProcessEnv => options.memberEnv?.[name] ?? {};
    try {
      for (let shard = 0; shard < shards; shard++) {
        const name = `coordinator-${shard}`;
        const member = new Member(name, 'coordinator', (port) => [
          '--shard', String(shard), '--shards', String(shards), '--port', String(port), '--data', dataDir,
          ...(credentials ? ['--secret-file', credentials.secretFile] : ['--insecure']),
          ...(options.coordinatorArgs ?? []),
        ], join(dataDir, `${name}.log`), env, options.nodeArgs);
        cluster.coordinators.push(member);
      }
      await Promise.all(cluster.coordinators.map((m) => m.start(envFor(m.name))));
      const proxied = options.faultProxies === true;
      const coordinatorUrlsFor = async (service: EcommerceService): Promise<string> => {
        if (!proxied) return cluster.coordinators.map((m) => m.url).join(',');
        const urls: string[] = [];
        for (const coordinator of cluster.coordinators) urls.push((await cluster.#addLink(`sidecar-${service}`, coordinator.name, coordinator.url)).url);
        return urls.join(',');
      };
      const catalog = JSON.stringify(options.catalog ?? {});
      if (options.postgres) cluster.postgres = await startTempPostgres(options.postgres);
      const pgUrl = cluster.postgres?.connectionString;
      for (const service of ECOMMERCE_SERVICES) {
        const database = service === 'payment' && pgUrl !== undefined ? ['--pg', pgUrl] : ['--db', join(dataDir, `${service}.db`)];
        cluster.services.set(service, new Member(`service-${service}`, 'service', (port) => [
          service, '--port', String(port), ...database, '--catalog', catalog,
          ...(credentials ? ['--key-file', credentials.serviceKeyFile(service)] : []),
        ], join(dataDir, `service-${service}.log`), env, options.nodeArgs));
      }
      await Promise.all([...cluster.services.values()].map((m) => m.start(envFor(m.name))));
      for (const service of ECOMMERCE_SERVICES) {
        const serviceMember = cluster.services.get(service)!;
        const serviceUrl = proxied ? (await cluster.#addLink(`sidecar-${service}`, serviceMember.name, serviceMember.url)).url : serviceMember.url;
        const coordinatorUrls = await coordinatorUrlsFor(service);
        // The sidecar's own port is known only once it listens: its inbound proxy gets the target then.
        const advertise = proxied ? ['--advertise-url', (await cluster.#addLink('coordinators', `sidecar-${service}`)).url] : [];
        cluster.sidecars.set(service, new Member(`sidecar-${service}`, 'sidecar', (port) => [
          '--service', service, '--service-url', serviceUrl, '--coordinator', coordinatorUrls, '--port', String(port), '--data', dataDir, ...advertise, ...keyFlag(service),
        ], join(dataDir, `sidecar-${service}.log`), env, options.nodeArgs));
      }
      await Promise.all([...cluster.sidecars.values()].map(async (m) => {
        const url = await m.start(envFor(m.name));
        cluster.links.get(`coordinators->${m.name}`)?.setTarget(url);
      }));
      await cluster.waitForRegistrations();
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  async #addLink(from: string, to: string, target?: string): Promise<FaultProxy> {
    const proxy = await FaultProxy.start(target === undefined ? {} : { target });
    this.links.set(`${from}->${to}`, proxy);
    return proxy;
  }

  /**
   * The fault proxy on a link, e.g. link('coordinator-0', 'sidecar-payment'), link('sidecar-payment',
   * 'service-payment'), link('sidecar-payment', 'coordinator-1'). A sidecar advertises one URL to every
   * shard, so all coordinator → sidecar calls share the proxy in front of that sidecar.
   */
  link(from: string, to: string): FaultProxy {
    const key = from.startsWith('coordinator') && to.startsWith('sidecar-') ? `coordinators->${to}` : `${from}->${to}`;
    const proxy = this.links.get(key);
    if (!proxy) throw new Error(`no fault proxy on ${from} -> ${to}; start the cluster with faultProxies (links: ${[...this.links.keys()].join(', ')})`);
    return proxy;
  }

  /** Returns every link to pass. */
  healAll(): void {
    for (const proxy of this.links.values()) proxy.heal();
  }

  get coordinatorUrls(): string[] {
    return this.coordinators.map((m) => m.url);
  }

  /** Waits until every shard lists every example service as registered. */
  async waitForRegistrations(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const coordinator of this.coordinators) {
      for (;;) {
        try {
          const res = await fetch(`${coordinator.url}/v1/services`, { headers: this.clientHeaders });
          const body = (await res.json()) as { services: { service: string }[] };
          const names = new Set(body.services.map((s) => s.service));
          if (ECOMMERCE_SERVICES.every((s) => names.has(s))) break;
        } catch {
          // not up yet
        }
        if (Date.now() > deadline) throw new Error(`services did not register with ${coordinator.name} in ${timeoutMs} ms`);
        await sleep(50);
      }
    }
  }

  async stop(): Promise<void> {
    // Sidecars first so nothing new reaches services, coordinators last.
    await Promise.all([...this.sidecars.values()].map((m) => m.stop()));
    await Promise.all([...this.services.values()].map((m) => m.stop()));
    await Promise.all(this.coordinators.map((m) => m.stop()));
    await Promise.all([...this.links.values()].map((p) => p.close()));
    await this.postgres?.stop();
  }

  /** The gids PostgreSQL still holds prepared (every database of the cluster's server); [] without one. */
  async pgPreparedGids(): Promise<string[]> {
    if (!this.postgres) return [];
    const client = new pg.Client({ connectionString: this.postgres.connectionString });
    await client.connect();
    try {
      return (await client.query<{ gid: string }>('SELECT gid FROM pg_prepared_xacts ORDER BY gid')).rows.map((r) => r.gid);
    } finally {
      await client.end();
    }
  }

  /** Removes the data directory if the cluster created it. */
  removeData(): void {
    if (this.#ownsDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
