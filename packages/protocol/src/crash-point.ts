/**
 * Deterministic crash points for tests: when TXMESH_CRASH_AT names a step (comma-separated list
 * allowed), the process kills itself with SIGKILL on reaching it — no cleanup, no flush, as a real
 * crash. An optional TXMESH_CRASH_AFTER=N lets the step pass N times first.
 */
const armed = new Set((process.env.TXMESH_CRASH_AT ?? '').split(',').map((s) => s.trim()).filter(Boolean));
let passesLeft = Number(process.env.TXMESH_CRASH_AFTER ?? '0') || 0;

export const CrashPoints = {
  /** Coordinator: transaction admitted, no prepare sent to anyone yet. */
  COORDINATOR_BEFORE_PREPARES_SENT: 'coordinator.before-prepares-sent',
  /** Coordinator: at least one yes vote counted, at least one vote still missing; nothing decided. */
  COORDINATOR_BETWEEN_VOTES: 'coordinator.between-votes',
  /** Coordinator: one branch acknowledged its commit, others not yet (fan-out half done). */
  COORDINATOR_MID_FANOUT: 'coordinator.mid-fanout',
  /** Coordinator: COMMIT record is durable, no commit message sent yet. */
  COORDINATOR_AFTER_COMMIT_LOGGED: 'coordinator.after-commit-logged',
  /** Coordinator: prepares were sent, no decision yet. */
  COORDINATOR_AFTER_PREPARES_SENT: 'coordinator.after-prepares-sent',
  /** Sidecar: prepared record durable, vote not yet answered. */
  SIDECAR_AFTER_PREPARED_RECORDED: 'sidecar.after-prepared-recorded',
  /** Participant service: prepare applied and durable, answer not yet sent. */
  PARTICIPANT_AFTER_PREPARE: 'participant.after-prepare',
  /** Participant service: commit applied and durable, ack not yet sent. */
  PARTICIPANT_AFTER_COMMIT: 'participant.after-commit',
} as const;
export type CrashPoint = (typeof CrashPoints)[keyof typeof CrashPoints];

export function crashPoint(step: CrashPoint): void {
  if (armed.size === 0 || !armed.has(step)) return;
  if (passesLeft > 0) {
    passesLeft -= 1;
    return;
  }
  process.stderr.write(`txmesh: crash point ${step} reached, SIGKILL\n`);
  process.kill(process.pid, 'SIGKILL');
}
