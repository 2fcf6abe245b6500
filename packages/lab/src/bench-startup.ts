/**
 * The startup probe, run before anything else of the benchmark while the machine is otherwise idle: a
 * coordinator, an example service and a sidecar in front of it are spawned one after the other, each
 * alone, `rounds` times. Each gives the milliseconds from its spawn to its TXMESH_READY line, and its
 * resident memory once it has sat idle for a second (the sidecar registered and heartbeating). A member
 * that crashed is serving again this soon, and an idle one costs this much memory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, round } from './bench-math.ts';
import { OPTIMISED_ENV } from './bench-options.ts';
import { processMemoryMb } from './bench-process.ts';
import { PROCESS_ROLES, type ProcessRole } from './bench-roles.ts';
import { Member, memberBuilds, sleep } from './cluster.ts';
import { ClusterCredentials } from './cluster-credentials.ts';

/** How long each role sits idle after the last one is ready, before its memory is read. */
const IDLE_SETTLE_MS = 1000;
/** The service the probe starts (with the example's default catalog, as `txmesh service` does). */
const PROBE_SERVICE = 'inventory';

export interface StartupFigures {
  rounds: number;
  /** Which build the members ran: their package's bundle or dist/ (scripts/bundle.mjs). */
  builds: { txmesh: 'bundle' | 'dist'; lab: 'bundle' | 'dist' };
  /** Each round's spawn → TXMESH_READY, ms, per role. */
  samplesMs: Record<ProcessRole, number[]>;
  /** The median of the rounds, per role. */
  startupMs: Record<ProcessRole, number>;
  /** Each round's CPU time (user + system) until TXMESH_READY, ms, per role: independent of the machine's load. */
  cpuSamplesMs: Record<ProcessRole, number[]>;
  /** The median of the rounds' CPU time until ready, per role. */
  startupCpuMs: Record<ProcessRole, number>;
  /** The median resident memory (VmRSS) after a second idle, MB, per role. */
  idleRssMb: Record<ProcessRole, number>;
}

const perRole = <T>(make: () => T): Record<ProcessRole, T> => ({ coordinator: make(), sidecar: make(), service: make() });

export async function probeStartup(rounds: number, say: (line: string) => void): Promise<StartupFigures> {
  const builds = memberBuilds();
  say(`[startup] spawning a coordinator, a service and a sidecar, one at a time, ${rounds} time(s) (txmesh runs its ${builds.txmesh}, the lab its ${builds.lab}) ...`);
  const samplesMs = perRole<number[]>(() => []);
  const cpuMs = perRole<number[]>(() => []);
  const rssMb = perRole<number[]>(() => []);
  for (let i = 0; i < rounds; i++) {
    const sample = await probeRound(say);
    for (const role of PROCESS_ROLES) {
      samplesMs[role].push(sample[role].startupMs);
      cpuMs[role].push(sample[role].cpuMs);
      rssMb[role].push(sample[role].rssMb);
    }
  }
  const figures: StartupFigures = {
    rounds,
    builds,
    samplesMs: perRole<number[]>(() => []),
    startupMs: perRole(() => 0),
    cpuSamplesMs: perRole<number[]>(() => []),
    startupCpuMs: perRole(() => 0),
    idleRssMb: perRole(() => 0),
  };
  for (const role of PROCESS_ROLES) {
    figures.samplesMs[role] = samplesMs[role].map((ms) => round(ms, 0));
    figures.startupMs[role] = round(median(samplesMs[role]), 0);
    figures.cpuSamplesMs[role] = cpuMs[role].map((ms) => round(ms, 0));
    figures.startupCpuMs[role] = round(median(cpuMs[role]), 0);
    figures.idleRssMb[role] = round(median(rssMb[role]), 1);
  }
  say(`[startup] ready after (median ms) ${PROCESS_ROLES.map((r) => `${r} ${figures.startupMs[r]} (CPU ${figures.startupCpuMs[r]})`).join(', ')}; idle RSS (MB) ${PROCESS_ROLES.map((r) => `${r} ${figures.idleRssMb[r]}`).join(', ')}`);
  return figures;
}

/** One round: the three roles started in order in a fresh directory, measured, stopped, removed. */
async function probeRound(say: (line: string) => void): Promise<Record<ProcessRole, { startupMs: number; cpuMs: number; rssMb: number }>> {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-startup-'));
  const env = { TXMESH_LOG_LEVEL: 'warn', ...OPTIMISED_ENV };
  const log = (name: string): string => join(dir, `${name}.log`);
  // Started as an operator would: with credentials, which the roles read at start.
  const credentials = new ClusterCredentials(dir);
  const serviceKey = ['--key-file', credentials.serviceKeyFile(PROBE_SERVICE)];
  const coordinator = new Member('coordinator-0', 'coordinator', (port) => ['--port', String(port), '--data', dir, '--secret-file', credentials.secretFile], log('coordinator-0'), env);
  const service = new Member(`service-${PROBE_SERVICE}`, 'service', (port) => [PROBE_SERVICE, '--port', String(port), '--db', join(dir, `${PROBE_SERVICE}.db`), ...serviceKey], log('service'), env);
  const started: Member[] = [coordinator];
  let failed = true;
  try {
    const coordinatorUrl = await coordinator.start();
    started.push(service);
    const serviceUrl = await service.start();
    const sidecar = new Member(`sidecar-${PROBE_SERVICE}`, 'sidecar', (port) => [
      '--service', PROBE_SERVICE, '--service-url', serviceUrl, '--coordinator', coordinatorUrl, '--port', String(port), '--data', dir, ...serviceKey,
    ], log('sidecar'), env);
    started.push(sidecar);
    await sidecar.start();
    await sleep(IDLE_SETTLE_MS);
    const measure = (m: Member): { startupMs: number; cpuMs: number; rssMb: number } => ({ startupMs: m.startupMs ?? NaN, cpuMs: m.startupCpuMs ?? NaN, rssMb: processMemoryMb(m.pid)?.rssMb ?? NaN });
    const result = { coordinator: measure(coordinator), service: measure(service), sidecar: measure(sidecar) };
    failed = false;
    return result;
  } finally {
    for (const m of started.reverse()) await m.stop();
    if (failed) say(`[startup] a probe round failed; logs kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}
