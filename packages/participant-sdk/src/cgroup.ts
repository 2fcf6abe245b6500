/**
 * What the container lets this process use: the CPU quota in cores and the memory limit, and the CPU time
 * the cgroup has consumed, from cgroup v2 files (cpu.max, cpu.stat, memory.max) or, on older hosts, the v1
 * ones (cpu.cfs_quota_us / cpu.cfs_period_us, cpuacct.usage, memory.limit_in_bytes). The parse* functions
 * are pure so they can be tested on fixture text; CgroupReader takes its root folders as parameters so tests
 * can point it at fixture directories.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** v1 reports "no limit" as a page-rounded 2^63-1; anything this large is no limit. */
const NO_LIMIT_ABOVE = 2 ** 60;

/** cpu.max: "<quota> <period>" or "max <period>" → cores, undefined for no limit. */
export function parseCpuMax(text: string): number | undefined {
  const [quota, period] = text.trim().split(/\s+/);
  if (quota === undefined || quota === 'max') return undefined;
  return coresOf(Number(quota), Number(period ?? 100_000));
}

/** cpu.cfs_quota_us and cpu.cfs_period_us → cores; a quota of -1 means no limit. */
export function parseCfsQuota(quotaText: string, periodText: string): number | undefined {
  return coresOf(Number(quotaText.trim()), Number(periodText.trim()));
}

function coresOf(quota: number, period: number): number | undefined {
  if (!Number.isFinite(quota) || !Number.isFinite(period) || quota <= 0 || period <= 0) return undefined;
  return quota / period;
}

/** memory.max ("max" or bytes) or memory.limit_in_bytes → bytes, undefined for no limit. */
export function parseMemoryLimit(text: string): number | undefined {
  const value = text.trim();
  if (value === 'max' || value === '') return undefined;
  const bytes = Number(value);
  if (!Number.isFinite(bytes) || bytes <= 0 || bytes >= NO_LIMIT_ABOVE) return undefined;
  return bytes;
}

/** cpu.stat (v2) → usage_usec. */
export function parseCpuStatUsageMicros(text: string): number | undefined {
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key === 'usage_usec') {
      const micros = Number(value);
      return Number.isFinite(micros) && micros >= 0 ? micros : undefined;
    }
  }
  return undefined;
}

export interface ProcCgroups {
  /** The unified (v2) path, from the "0::<path>" line. */
  unified: string | undefined;
  /** v1 controller → path, e.g. "memory" → "/docker/abc". */
  v1: Map<string, string>;
}

/** /proc/self/cgroup: "hierarchy-id:controller[,controller]:path" per line. */
export function parseProcSelfCgroup(text: string): ProcCgroups {
  const result: ProcCgroups = { unified: undefined, v1: new Map() };
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1).trim();
    if (line.slice(0, first) === '0' && controllers === '') result.unified = path;
    else for (const c of controllers.split(',')) if (c) result.v1.set(c, path);
  }
  return result;
}

export interface CgroupLimits {
  version: 1 | 2 | undefined;
  cpuLimitCores: number | undefined;
  memoryLimitBytes: number | undefined;
}

export interface CgroupReaderOptions {
  /** Where the cgroup file systems are mounted (default /sys/fs/cgroup). */
  root?: string;
  /** Default /proc/self/cgroup. */
  procSelfCgroup?: string;
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Finds this process's cgroup files once, then reads them on demand. Inside a container the cgroup
 * namespace usually makes the own path "/" (files at the root); on a host the path names a sub-folder.
 * Both are tried: the own folder first, then the root.
 */
export class CgroupReader {
  readonly version: 1 | 2 | undefined;
  readonly #cpuDir: string | undefined;
  readonly #cpuacctDir: string | undefined;
  readonly #memoryDir: string | undefined;

  constructor(options: CgroupReaderOptions = {}) {
    const root = options.root ?? '/sys/fs/cgroup';
    const own = parseProcSelfCgroup(readText(options.procSelfCgroup ?? '/proc/self/cgroup') ?? '');
    const pick = (base: string, path: string | undefined, probe: string): string | undefined => {
      for (const dir of [path ? join(base, path) : undefined, base]) {
        if (dir !== undefined && readText(join(dir, probe)) !== undefined) return dir;
      }
      return undefined;
    };
    // v2: a unified hierarchy with cpu.max or memory.max (the root cgroup has neither; cpu.stat then).
    const v2Cpu = pick(root, own.unified, 'cpu.max') ?? pick(root, own.unified, 'cpu.stat');
    const v2Memory = pick(root, own.unified, 'memory.max');
    if (own.unified !== undefined && (v2Cpu !== undefined || v2Memory !== undefined) && own.v1.size === 0) {
      this.version = 2;
      this.#cpuDir = v2Cpu;
      this.#cpuacctDir = v2Cpu;
      this.#memoryDir = v2Memory;
      return;
    }
    const v1 = (controller: string, probe: string): string | undefined => {
      // The mount point is named after the controller, sometimes a joined name (cpu,cpuacct).
      for (const mount of [controller, 'cpu,cpuacct', 'cpuacct,cpu']) {
        const dir = pick(join(root, mount), own.v1.get(controller), probe);
        if (dir !== undefined) return dir;
      }
      return undefined;
    };
    this.#cpuDir = v1('cpu', 'cpu.cfs_quota_us');
    this.#cpuacctDir = v1('cpuacct', 'cpuacct.usage');
    this.#memoryDir = v1('memory', 'memory.limit_in_bytes');
    this.version = this.#cpuDir ?? this.#cpuacctDir ?? this.#memoryDir ? 1 : undefined;
  }

  limits(): CgroupLimits {
    let cpuLimitCores: number | undefined;
    let memoryLimitBytes: number | undefined;
    if (this.version === 2) {
      const cpuMax = this.#cpuDir && readText(join(this.#cpuDir, 'cpu.max'));
      if (cpuMax) cpuLimitCores = parseCpuMax(cpuMax);
      const memoryMax = this.#memoryDir && readText(join(this.#memoryDir, 'memory.max'));
      if (memoryMax) memoryLimitBytes = parseMemoryLimit(memoryMax);
    } else if (this.version === 1) {
      const quota = this.#cpuDir && readText(join(this.#cpuDir, 'cpu.cfs_quota_us'));
      const period = this.#cpuDir && readText(join(this.#cpuDir, 'cpu.cfs_period_us'));
      if (quota && period) cpuLimitCores = parseCfsQuota(quota, period);
      const memory = this.#memoryDir && readText(join(this.#memoryDir, 'memory.limit_in_bytes'));
      if (memory) memoryLimitBytes = parseMemoryLimit(memory);
    }
    return { version: this.version, cpuLimitCores, memoryLimitBytes };
  }

  /** CPU time the whole cgroup has used, in microseconds; undefined when it cannot be read. */
  cpuUsageMicros(): number | undefined {
    if (this.version === 2) {
      const stat = this.#cpuacctDir && readText(join(this.#cpuacctDir, 'cpu.stat'));
      return stat ? parseCpuStatUsageMicros(stat) : undefined;
    }
    if (this.version === 1) {
      const usage = this.#cpuacctDir && readText(join(this.#cpuacctDir, 'cpuacct.usage'));
      const nanos = usage ? Number(usage.trim()) : NaN;
      return Number.isFinite(nanos) && nanos >= 0 ? nanos / 1000 : undefined;
    }
    return undefined;
  }
}
