/**
 * Named steps of the protocol, published on the `txmesh:step` diagnostics channel as they are passed.
 * Nothing listens in production, so a step costs one property read; crash tests subscribe (through
 * @txmesh/lab's crash-on-step preload) and SIGKILL the process at the step they name.
 */
import { channel } from 'node:diagnostics_channel';

export const SidecarSteps = {
  /** The prepared records are durable and the service has not answered yet (it may not have prepared). */
  AFTER_RECORDED_AHEAD: 'sidecar.after-recorded-ahead',
  /** The prepared record is durable, the service voted yes, the vote not yet answered. */
  AFTER_PREPARED_RECORDED: 'sidecar.after-prepared-recorded',
} as const;
export type SidecarStep = (typeof SidecarSteps)[keyof typeof SidecarSteps];

const steps = channel('txmesh:step');

export function reachStep(step: SidecarStep): void {
  if (steps.hasSubscribers) steps.publish(step);
}
