/**
 * Who may call which coordinator route (docs/design.md, Security). Checked on request, before the body
 * is read: a refused caller costs a header parse and two HMACs, and changes nothing.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CallerRole, Paths, TxmeshError, authenticateWithSecrets, type Caller } from '@txmesh/protocol';
import { DASHBOARD_DATA_PATH } from './dashboard/dashboard-page.ts';
import { DASHBOARD_PATH } from './dashboard/dashboard-routes.ts';

type Allowed = readonly CallerRole[];

const CLIENT: Allowed = [CallerRole.CLIENT];
const ANY_KNOWN: Allowed = [CallerRole.CLIENT, CallerRole.SERVICE];
const SERVICE: Allowed = [CallerRole.SERVICE];

/** Route (method + fastify route pattern) → callers allowed. A route not listed here takes nobody. */
const RULES = new Map<string, Allowed>([
  [`POST ${Paths.TRANSACTIONS}`, CLIENT],
  [`GET ${Paths.TRANSACTION}`, CLIENT],
  [`GET ${Paths.TRANSACTION_DECISION}`, ANY_KNOWN],
  [`POST ${Paths.SERVICES}`, SERVICE],
  [`GET ${Paths.SERVICES}`, ANY_KNOWN],
  [`GET ${Paths.IN_DOUBT}`, ANY_KNOWN],
  [`POST ${Paths.WAIT_FOR}`, SERVICE],
]);

/**
 * Probes and views work without credentials: a liveness check that needs a secret fails while secrets
 * rotate, /v1/stats holds only numbers (scraped like metrics), and the dashboard is read by a browser,
 * which sends no bearer token. They change nothing; what they show (service names, sidecar addresses,
 * in-doubt ids) opens no door, since every call that acts needs a credential.
 */
const OPEN = new Set<string>([
  `GET ${Paths.COORDINATOR_HEALTH}`,
  `HEAD ${Paths.COORDINATOR_HEALTH}`,
  `GET ${Paths.COORDINATOR_READY}`,
  `HEAD ${Paths.COORDINATOR_READY}`,
  `GET ${Paths.COORDINATOR_STATS}`,
  `GET ${DASHBOARD_PATH}`,
  `GET ${DASHBOARD_DATA_PATH}`,
]);

const callers = new WeakMap<FastifyRequest, Caller>();

/** The proven caller of a request, when credentials are on. */
export function callerOf(request: FastifyRequest): Caller | undefined {
  return callers.get(request);
}

/** Turns the checks on for every route of `app`. Unmatched URLs fall through to the catalogue's 404. */
export function requireCallers(app: FastifyInstance, secrets: readonly string[]): void {
  app.addHook('onRequest', async (request) => {
    const pattern = request.routeOptions.url;
    if (pattern === undefined) return;
    const route = `${request.method} ${pattern}`;
    if (OPEN.has(route)) return;
    const caller = authenticateWithSecrets(request.headers.authorization, secrets);
    const allowed = RULES.get(route) ?? [];
    if (!allowed.includes(caller.role)) throw new TxmeshError('TXM_FORBIDDEN', `${route} takes ${allowed.join(' or ') || 'no caller'}, not a ${caller.role}`);
    callers.set(request, caller);
  });
}
