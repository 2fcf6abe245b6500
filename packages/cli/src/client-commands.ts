/**
 * The operator's look into a running cluster, built on @txmesh/client so that nobody has to know how a
 * key or an id picks its shard: `begin` sends a transaction read from stdin to the shard that owns its
 * idempotencyKey, `status` asks the shard its id names, `in-doubt` and `services` ask every shard.
 * Each prints one JSON document on stdout; a refusal prints its error body on stderr.
 */
import type { ShardAnswer, TxmeshClient } from '@txmesh/client';
import { Outcome, TxmeshError, isValidName } from '@txmesh/protocol';
import { UsageError, type FlagReader } from './args.ts';
import { readKeys } from './security-flags.ts';

/** Exit codes: 0 done (begin: committed), 1 refused or unreachable, 2 usage, 3 begin aborted. */
export const EXIT_ABORTED = 3;
/** Larger than any begin a coordinator accepts (1 MiB), so its own refusal reports an oversized body. */
const MAX_STDIN_BYTES = 2 * 1024 * 1024;

export const CLIENT_COMMANDS = new Set(['begin', 'status', 'in-doubt', 'services']);

export interface CommandIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const processIo: CommandIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };

function print(out: NodeJS.WritableStream, value: unknown): void {
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}

async function readStdin(stdin: CommandIo['stdin']): Promise<unknown> {
  if (stdin.isTTY) throw new UsageError('begin reads the transaction as JSON on stdin, e.g. `txmesh begin --coordinator URL < tx.json`');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buffer.length;
    if (size > MAX_STDIN_BYTES) throw new TxmeshError('TXM_BODY_TOO_LARGE', `stdin holds more than ${MAX_STDIN_BYTES} bytes`);
    chunks.push(buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (err) {
    throw new TxmeshError('TXM_BAD_REQUEST', `stdin is not valid JSON: ${(err as Error).message}`);
  }
}

/** Prints a per-shard listing; exit 1 when any shard could not answer. */
function printShards<T>(out: NodeJS.WritableStream, answers: ShardAnswer<T>[]): number {
  print(out, { shards: answers.map((a) => ('answer' in a ? { shard: a.shard, url: a.url, ...a.answer } : a)) });
  return answers.every((a) => 'answer' in a) ? 0 : 1;
}

interface Flags {
  olderThanMs?: number;
}

/** Reads every flag of the command before anything runs, so a typo fails first. */
function readFlags(command: string, f: FlagReader): Flags {
  if (command !== 'in-doubt') return {};
  const olderThan = f.optionalString('older-than');
  if (olderThan === undefined) return {};
  const olderThanMs = Number(olderThan);
  if (!Number.isInteger(olderThanMs) || olderThanMs < 0) throw new UsageError('--older-than must be a non-negative integer of milliseconds');
  return { olderThanMs };
}

/** --client NAME --key-file FILE, both or neither (neither: the shards must run --insecure). */
function clientCredential(f: FlagReader): { name: string; key: string } | undefined {
  const name = f.optionalString('client');
  const keyFile = f.optionalString('key-file');
  if (name === undefined && keyFile === undefined) return undefined;
  if (name === undefined || keyFile === undefined) throw new UsageError('--client NAME and --key-file FILE go together (issue the key with `txmesh credentials client NAME`)');
  if (!isValidName(name)) throw new UsageError('--client must be a name of letters, digits, . _ -');
  return { name, key: readKeys(keyFile, 'key-file')[0]! };
}

async function run(command: string, positionals: string[], flags: Flags, client: () => TxmeshClient, io: CommandIo): Promise<number> {
  switch (command) {
    case 'begin': {
      const request = await readStdin(io.stdin);
      const result = await client().transaction(request as Parameters<TxmeshClient['transaction']>[0]);
      print(io.stdout, result);
      return result.outcome === Outcome.COMMITTED ? 0 : EXIT_ABORTED;
    }
    case 'status': {
      const txId = positionals[0];
      if (txId === undefined) throw new UsageError('status needs a transaction id: txmesh status <txId> --coordinator URL[,URL...]');
      print(io.stdout, await client().status(txId));
      return 0;
    }
    case 'in-doubt':
      return printShards(io.stdout, await client().inDoubt(flags));
    case 'services':
      return printShards(io.stdout, await client().services());
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

/** Runs one client command; usage errors are thrown (the caller prints the usage), refusals printed here. */
export async function runClientCommand(command: string, positionals: string[], f: FlagReader, io: CommandIo = processIo): Promise<number> {
  const coordinatorUrls = f.coordinatorUrls();
  const flags = readFlags(command, f);
  const credential = clientCredential(f);
  f.done();
  // Loaded here, not at the top: main (and every role) imports this module for CLIENT_COMMANDS.
  const { createTxmeshClient } = await import('@txmesh/client');
  // node:http: a command makes a call or two, and undici would take longer to load than they take.
  let opened: TxmeshClient | undefined;
  const client = (): TxmeshClient => (opened ??= createTxmeshClient({ coordinatorUrls, stack: 'node:http', ...(credential ? { credential } : {}) }));
  try {
    return await run(command, positionals, flags, client, io);
  } catch (err) {
    if (!(err instanceof TxmeshError)) throw err;
    print(io.stderr, err.toBody());
    return 1;
  } finally {
    await opened?.close();
  }
}
