/**
 * The security flags of the long-running roles: credentials (on unless --insecure) and TLS on the
 * listener. Files are read here, at start, so a missing or malformed one fails before anything listens.
 */
import fs from 'node:fs';
import { parseKeyList } from '@txmesh/protocol';
import { type FlagReader, UsageError } from './args.ts';

export interface TlsFiles {
  cert: string;
  key: string;
}

function readFile(path: string, flag: string): string {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--${flag} ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function readKeys(path: string, flag: string): string[] {
  try {
    return parseKeyList(readFile(path, flag), `--${flag} ${path}`);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

/** --tls-cert FILE --tls-key FILE (PEM), both or neither. */
export function tlsFlags(f: FlagReader): { tls?: TlsFiles } {
  const cert = f.optionalString('tls-cert');
  const key = f.optionalString('tls-key');
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  return cert !== undefined && key !== undefined ? { tls: { cert: readFile(cert, 'tls-cert'), key: readFile(key, 'tls-key') } } : {};
}

/**
 * `flag` FILE (the keys), or --insecure to run without credentials. Neither is a usage error: a component
 * that anyone on the network can drive must be chosen knowingly.
 */
export function keyFlags(f: FlagReader, flag: 'secret-file' | 'key-file'): { keys?: string[]; insecure: boolean } {
  const file = f.optionalString(flag);
  const insecure = f.bool('insecure');
  if (file !== undefined && insecure) throw new UsageError(`--${flag} and --insecure exclude each other`);
  if (file === undefined && !insecure) {
    throw new UsageError(`--${flag} FILE is required (issue it with \`txmesh credentials\`), or pass --insecure to run without credentials`);
  }
  return file === undefined ? { insecure } : { keys: readKeys(file, flag), insecure };
}

/** One pino-shaped warn line on stderr, named like the role's own log lines (`coordinator-0`, `sidecar-inventory`). */
export function warnInsecure(name: string): void {
  const msg = `${name} runs with --insecure: no route checks its caller; anyone who can reach this port can begin, vote, commit and roll back`;
  process.stderr.write(`${JSON.stringify({ level: 40, time: Date.now(), pid: process.pid, name, msg })}\n`);
}
