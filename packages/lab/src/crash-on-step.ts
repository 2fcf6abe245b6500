/**
 * Preload for crash tests: `node --import <this file> …` with TXMESH_CRASH_AT=<step>[,<step>…] kills the
 * process with SIGKILL when it reaches a named step (no cleanup, no flush: a real crash). The components
 * publish their steps on the `txmesh:step` diagnostics channel; without this preload nothing listens.
 * TXMESH_CRASH_AFTER=N lets the step pass N times first.
 */
import { subscribe } from 'node:diagnostics_channel';

const armed = new Set((process.env.TXMESH_CRASH_AT ?? '').split(',').map((s) => s.trim()).filter(Boolean));
let passesLeft = Number(process.env.TXMESH_CRASH_AFTER ?? '0') || 0;

if (armed.size > 0) {
  subscribe('txmesh:step', (step) => {
    if (typeof step !== 'string' || !armed.has(step)) return;
    if (passesLeft > 0) {
      passesLeft -= 1;
      return;
    }
    process.stderr.write(`txmesh: crash point ${step} reached, SIGKILL\n`);
    process.kill(process.pid, 'SIGKILL');
  });
}

/** The absolute path of this preload, for `--import`. */
export const CRASH_ON_STEP_PRELOAD = new URL(import.meta.url).pathname;
