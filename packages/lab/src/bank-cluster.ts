/**
 * A cluster of bank services as real processes on loopback, for the isolation benchmark: coordinator
 * shards and bank services (packages/lab/src/bank-service.ts) with a sidecar each, every member told the
 * same deadlock mode.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeadlockMode } from '@txmesh/protocol';
import { Member, sleep } from './cluster.ts';
import { ClusterCredentials } from './cluster-credentials.ts';

export interface BankClusterOptions {
  shards: number;
  services: readonly string[];
  deadlock: DeadlockMode;
  lockWaitMs: number;
  accounts: { count: number; balance: number };
}

export class BankCluster {
  readonly dataDir: string;
  readonly coordinators: Member[] = [];
  readonly services = new Map<string, Member>();
  readonly sidecars = new Map<string, Member>();
  /** A fresh secret per cluster, as a real deployment has one: every member runs with credentials. */
  readonly credentials: ClusterCredentials;

  private constructor(dataDir: string) {
    this.dataDir = dataDir;
    this.credentials = new ClusterCredentials(dataDir);
  }

  static async start(o: BankClusterOptions): Promise<BankCluster> {
    const cluster = new BankCluster(mkdtempSync(join(tmpdir(), 'txmesh-bank-')));
    const dir = cluster.dataDir;
    const env = { TXMESH_LOG_LEVEL: 'error' };
    const credentials = cluster.credentials;
    try {
      for (let shard = 0; shard < o.shards; shard++) {
        const name = `coordinator-${shard}`;
        cluster.coordinators.push(new Member(name, 'coordinator', (port) => [
          '--shard', String(shard), '--shards', String(o.shards), '--port', String(port), '--data', dir, '--deadlock', o.deadlock,
          '--secret-file', credentials.secretFile,
        ], join(dir, `${name}.log`), env));
      }
      await Promise.all(cluster.coordinators.map((m) => m.start()));
      const coordinatorUrls = cluster.coordinators.map((m) => m.url).join(',');
      for (const service of o.services) {
        const member = new Member(`service-${service}`, 'bank', (port) => [
          service, '--port', String(port), '--db', join(dir, `${service}.db`), '--deadlock', o.deadlock, '--lock-wait', String(o.lockWaitMs),
          '--accounts', String(o.accounts.count), '--balance', String(o.accounts.balance),
          '--key-file', credentials.serviceKeyFile(service),
        ], join(dir, `service-${service}.log`), env);
        cluster.services.set(service, member);
      }
      await Promise.all([...cluster.services.values()].map((m) => m.start()));
      for (const service of o.services) {
        const member = new Member(`sidecar-${service}`, 'sidecar', (port) => [
          '--service', service, '--service-url', cluster.services.get(service)!.url, '--coordinator', coordinatorUrls, '--port', String(port), '--data', dir,
          '--key-file', credentials.serviceKeyFile(service),
        ], join(dir, `sidecar-${service}.log`), env);
        cluster.sidecars.set(service, member);
      }
      await Promise.all([...cluster.sidecars.values()].map((m) => m.start()));
      await cluster.#waitForRegistrations(o.services);
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  get coordinatorUrls(): string[] {
    return this.coordinators.map((m) => m.url);
  }

  async #waitForRegistrations(services: readonly string[]): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (const coordinator of this.coordinators) {
      for (;;) {
        try {
          const body = (await (await fetch(`${coordinator.url}/v1/services`, { headers: this.credentials.clientHeaders })).json()) as { services: { service: string }[] };
          if (services.every((s) => body.services.some((x) => x.service === s))) break;
        } catch {
          // not up yet
        }
        if (Date.now() > deadline) throw new Error(`bank services did not register with ${coordinator.name}`);
        await sleep(50);
      }
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sidecars.values()].map((m) => m.stop()));
    await Promise.all([...this.services.values()].map((m) => m.stop()));
    await Promise.all(this.coordinators.map((m) => m.stop()));
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
