/**
 * Per-service phase timeouts, e.g. {"payment": {"prepareTimeoutMs": 800, "deliveryTimeoutMs": 2000}}.
 * prepareTimeoutMs: how long the service has to vote, from the transaction's arrival (it can only
 * shorten the transaction's own deadline). deliveryTimeoutMs: how long one commit/rollback attempt
 * waits for the service's answer before it is retried.
 */
import { DEFAULT_LIMITS, isValidName } from '@txmesh/protocol';

export interface ServicePhaseTimeouts {
  prepareTimeoutMs?: number;
  deliveryTimeoutMs?: number;
}

export type ServiceTimeouts = Record<string, ServicePhaseTimeouts>;

const FIELDS = ['prepareTimeoutMs', 'deliveryTimeoutMs'] as const;

/** Checks a value (typically parsed JSON) and returns a clean copy; throws TypeError naming the bad field. */
export function validateServiceTimeouts(value: unknown): ServiceTimeouts {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError('serviceTimeouts must be an object keyed by service name');
  }
  const clean: ServiceTimeouts = Object.create(null) as ServiceTimeouts;
  for (const [service, raw] of Object.entries(value)) {
    if (!isValidName(service)) throw new TypeError(`serviceTimeouts: "${service}" is not a service name`);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new TypeError(`serviceTimeouts.${service} must be an object`);
    const entry: ServicePhaseTimeouts = {};
    for (const [field, ms] of Object.entries(raw as Record<string, unknown>)) {
      if (!(FIELDS as readonly string[]).includes(field)) {
        throw new TypeError(`serviceTimeouts.${service}.${field} is unknown; use ${FIELDS.join(' or ')}`);
      }
      if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < DEFAULT_LIMITS.minTimeoutMs || ms > DEFAULT_LIMITS.maxTimeoutMs) {
        throw new TypeError(`serviceTimeouts.${service}.${field} must be an integer from ${DEFAULT_LIMITS.minTimeoutMs} to ${DEFAULT_LIMITS.maxTimeoutMs}`);
      }
      entry[field as (typeof FIELDS)[number]] = ms;
    }
    clean[service] = entry;
  }
  return clean;
}
