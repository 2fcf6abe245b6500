import { DEFAULT_LOG_LEVEL, LOG_LEVELS, isLogLevel, type LogLevel } from '@txmesh/protocol';

/** A small argv parser: `--name value`, `--flag`, and positionals. Unknown flags are refused by the caller. */
export interface ParsedArgs {
  positionals: string[];
  flags: Map<string, string | true>;
}

export function parseArgs(argv: string[]): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    if (eq > 0) {
      flags.set(arg.slice(2, eq), arg.slice(eq + 1));
      continue;
    }
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith('--')) {
      flags.set(arg.slice(2), next);
      i++;
    } else {
      flags.set(arg.slice(2), true);
    }
  }
  return { positionals, flags };
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Reads flags with defaults and refuses anything not declared, so a typo never passes silently. */
export class FlagReader {
  readonly #flags: Map<string, string | true>;
  readonly #known = new Set<string>();

  constructor(flags: Map<string, string | true>) {
    this.#flags = flags;
  }

  string(name: string, fallback?: string): string {
    this.#known.add(name);
    const value = this.#flags.get(name);
    if (value === undefined) {
      if (fallback === undefined) throw new UsageError(`--${name} is required`);
      return fallback;
    }
    if (value === true) throw new UsageError(`--${name} needs a value`);
    return value;
  }

  optionalString(name: string): string | undefined {
    this.#known.add(name);
    const value = this.#flags.get(name);
    if (value === true) throw new UsageError(`--${name} needs a value`);
    return value;
  }

  int(name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const raw = this.string(name, String(fallback));
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${raw}"`);
    }
    return value;
  }

  /** One of the listed words, e.g. --deadlock detect|wait-die|timeout. */
  choice<T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const raw = this.string(name, fallback);
    if (!(choices as readonly string[]).includes(raw)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got "${raw}"`);
    return raw as T;
  }

  bool(name: string): boolean {
    this.#known.add(name);
    const value = this.#flags.get(name);
    return value === true || value === 'true';
  }

  /** --log-level, else TXMESH_LOG_LEVEL, else warn: checked here, so a typo fails before anything starts. */
  logLevel(): LogLevel {
    const value = this.string('log-level', process.env.TXMESH_LOG_LEVEL || DEFAULT_LOG_LEVEL);
    if (!isLogLevel(value)) throw new UsageError(`--log-level (or TXMESH_LOG_LEVEL) must be one of ${LOG_LEVELS.join(', ')}, got "${value}"`);
    return value;
  }

  /** --coordinator URL[,URL...]: every shard's URL, index = shard number. */
  coordinatorUrls(): string[] {
    const urls = this.string('coordinator').split(',').map((u) => u.trim()).filter(Boolean);
    if (urls.length === 0) throw new UsageError('--coordinator needs the URL of every shard, comma-separated in shard order');
    for (const url of urls) {
      let parsed: URL | undefined;
      try {
        parsed = new URL(url);
      } catch {
        // reported below
      }
      if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) throw new UsageError(`--coordinator: "${url}" is not an http(s) URL`);
    }
    return urls;
  }

  /** Call after reading every flag: refuses unknown ones. */
  done(): void {
    for (const name of this.#flags.keys()) {
      if (!this.#known.has(name)) throw new UsageError(`unknown flag --${name}`);
    }
  }
}
