import { median } from './bench-math.ts';

/**
 * The three kinds of long-running process in a cluster, and a run's per-member figures folded per kind:
 * the targets of issue 17 are stated per role (a sidecar, a coordinator), so the largest member counts.
 */
export const PROCESS_ROLES = ['coordinator', 'sidecar', 'service'] as const;
export type ProcessRole = (typeof PROCESS_ROLES)[number];

/** A cluster member's role from its name: "coordinator-0", "sidecar-payment", "service-order". */
export function roleOfMember(name: string): ProcessRole | undefined {
  return PROCESS_ROLES.find((role) => name.startsWith(`${role}-`));
}

/** Each role's members' figures; a role without members is left out. */
function byRole(byMember: Record<string, number>): Partial<Record<ProcessRole, number[]>> {
  const out: Partial<Record<ProcessRole, number[]>> = {};
  for (const [name, value] of Object.entries(byMember)) {
    const role = roleOfMember(name);
    if (role !== undefined && Number.isFinite(value)) (out[role] ??= []).push(value);
  }
  return out;
}

/** The largest figure of each role's members (memory: the target holds for every sidecar). */
export function largestPerRole(byMember: Record<string, number>): Partial<Record<ProcessRole, number>> {
  return Object.fromEntries(Object.entries(byRole(byMember)).map(([role, values]) => [role, Math.max(...values)]));
}

/** The median figure of each role's members. */
export function medianPerRole(byMember: Record<string, number>): Partial<Record<ProcessRole, number>> {
  return Object.fromEntries(Object.entries(byRole(byMember)).map(([role, values]) => [role, median(values)]));
}
