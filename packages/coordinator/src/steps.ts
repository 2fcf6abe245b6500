/**
 * Named steps of the protocol, published on the `txmesh:step` diagnostics channel as they are passed.
 * Nothing listens in production, so a step costs one property read; crash tests subscribe (through
 * @txmesh/lab's crash-on-step preload) and SIGKILL the process at the step they name.
 */
import { channel } from 'node:diagnostics_channel';

export const CoordinatorSteps = {
  /** Transaction admitted, no prepare sent to anyone yet. */
  BEFORE_PREPARES_SENT: 'coordinator.before-prepares-sent',
  /** Prepares were sent, no decision yet. */
  AFTER_PREPARES_SENT: 'coordinator.after-prepares-sent',
  /** At least one yes vote counted, at least one vote still missing; nothing decided. */
  BETWEEN_VOTES: 'coordinator.between-votes',
  /** The COMMIT record is durable, no commit message sent yet. */
  AFTER_COMMIT_LOGGED: 'coordinator.after-commit-logged',
  /** One branch acknowledged its commit, others not yet (fan-out half done). */
  MID_FANOUT: 'coordinator.mid-fanout',
} as const;
export type CoordinatorStep = (typeof CoordinatorSteps)[keyof typeof CoordinatorSteps];

const steps = channel('txmesh:step');

export function reachStep(step: CoordinatorStep): void {
  if (steps.hasSubscribers) steps.publish(step);
}
