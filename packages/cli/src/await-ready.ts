/**
 * For whoever starts a `txmesh` role as a child process (tests, harnesses): resolves with the URL of its
 * "TXMESH_READY <url>" line, or rejects if the process exits first.
 */
import type { ChildProcess } from 'node:child_process';
import { READY_PREFIX } from './serve.ts';

export function awaitReady(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onExit = (code: number | null, signal: string | null): void => reject(new Error(`txmesh exited before it was ready (code ${code}, signal ${signal})`));
    child.once('exit', onExit);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const line = out.split('\n').find((l) => l.startsWith(READY_PREFIX));
      if (line === undefined) return;
      child.off('exit', onExit);
      resolve(line.slice(READY_PREFIX.length).trim());
    });
  });
}
