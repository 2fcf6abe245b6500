/**
 * Child processes for the consumer test: a command that must finish (npm, tsc, a script) and a long-running
 * process that is ready once it prints a line. Output is kept so a failure shows what the process said.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface RunOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** Kills the child and everything it started (npm runs node-gyp, make and the compiler as grandchildren). */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    child.kill(signal); // the group is gone already, or the child is not a group leader
  }
}

/** Runs a command to its end; rejects with its output when it fails or outlives timeoutMs. */
export function run(command: string, args: string[], options: RunOptions): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGKILL');
    }, options.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const durationMs = performance.now() - started;
      if (code === 0) return resolve({ stdout, stderr, durationMs });
      const why = timedOut ? `did not finish in ${options.timeoutMs} ms` : `exited with code ${code}, signal ${signal}`;
      reject(new Error(`${command} ${args.join(' ')} ${why}\n--- stdout\n${stdout.slice(-4000)}\n--- stderr\n${stderr.slice(-4000)}`));
    });
  });
}

export interface Started {
  /** The first capture group of the ready line, e.g. the URL the process listens on. */
  readonly ready: string;
  /** Everything it printed so far, for failure messages. */
  output(): string;
  /** SIGTERM, then SIGKILL after graceMs; answers whether it exited by itself within the grace. */
  stop(graceMs?: number): Promise<boolean>;
}

/** Starts a long-running process and resolves once a line of its stdout matches `readyLine`. */
export function startUntilReady(command: string, args: string[], options: RunOptions & { readyLine: RegExp }): Promise<Started> {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (graceMs = 5000): Promise<boolean> => {
    if (child.exitCode !== null || child.signalCode !== null) return true;
    child.kill('SIGTERM');
    let graceful = true;
    const timer = setTimeout(() => {
      graceful = false;
      child.kill('SIGKILL');
    }, graceMs);
    await exited;
    clearTimeout(timer);
    return graceful;
  };
  return new Promise((resolve, reject) => {
    let settled = false;
    let partial = '';
    const settle = (why: string | undefined, ready?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (why === undefined) return resolve({ ready: ready ?? '', output: () => output, stop });
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} ${why}\n--- output\n${output.slice(-4000)}`));
    };
    const timer = setTimeout(() => settle(`did not print its ready line in ${options.timeoutMs} ms`), options.timeoutMs);
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stdout.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output += text;
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const match = options.readyLine.exec(line);
        if (match !== null) settle(undefined, match[1] ?? match[0]);
      }
    });
    child.once('error', (err) => settle(err.message));
    child.once('exit', (code, signal) => settle(`exited before it was ready (code ${code}, signal ${signal})`));
  });
}
