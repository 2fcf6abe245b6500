/**
 * Named steps of the protocol, published on the `txmesh:step` diagnostics channel as they are passed.
 * Nothing listens in production, so a step costs one property read; crash tests subscribe (through
 * @txmesh/lab's crash-on-step preload) and SIGKILL the process at the step they name.
 */
import { channel } from 'node:diagnostics_channel';

export const ParticipantSteps = {
  /** A prepare is applied and durable, its answer not yet sent. */
  AFTER_PREPARE: 'participant.after-prepare',
  /** A commit is applied and durable, its ack not yet sent. */
  AFTER_COMMIT: 'participant.after-commit',
  /** PostgreSQL native mode: a commit or rollback arrived (the vote had left), nothing of it applied yet. */
  BEFORE_DECISION: 'participant.before-decision',
  /** PostgreSQL native mode: COMMIT PREPARED is sent, its answer not read. */
  DURING_COMMIT_PREPARED: 'participant.during-commit-prepared',
} as const;
export type ParticipantStep = (typeof ParticipantSteps)[keyof typeof ParticipantSteps];

const steps = channel('txmesh:step');

export function reachStep(step: ParticipantStep): void {
  if (steps.hasSubscribers) steps.publish(step);
}
