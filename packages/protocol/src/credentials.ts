/**
 * Who is calling: per-service and per-client keys derived from one cluster secret, and the proofs
 * each kind of caller sends. See docs/design.md, "Security".
 *
 * - cluster secret S: held by the coordinators (and by whoever issues keys).
 * - service key K(svc) = HMAC(S, "txmesh service " + svc): held by svc's sidecar and by svc itself.
 * - client key  K(name) = HMAC(S, "txmesh client " + name): held by an application that begins transactions.
 *
 * A caller sends `Authorization: Bearer <role>:<name>:<proof>`, the proof being HMAC(key, purpose):
 *   service:svc:HMAC(K(svc), "to-coordinator")      sidecar of svc -> coordinator
 *   client:name:HMAC(K(name), "to-coordinator")     application -> coordinator
 *   coordinator:svc:HMAC(K(svc), "to-sidecar")      coordinator -> sidecar of svc
 *   sidecar:svc:HMAC(K(svc), "to-participant")      sidecar of svc -> svc's participant routes
 * Each proof is bound to its direction, so one leaked header opens one door only. Several secrets (or
 * keys) may be configured: the first signs, every one verifies, which is how they are rotated.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { TxmeshError } from './errors.ts';

export const CallerRole = {
  SERVICE: 'service',
  CLIENT: 'client',
  COORDINATOR: 'coordinator',
  SIDECAR: 'sidecar',
} as const;
export type CallerRole = (typeof CallerRole)[keyof typeof CallerRole];

const PURPOSE: Record<CallerRole, string> = {
  service: 'to-coordinator',
  client: 'to-coordinator',
  coordinator: 'to-sidecar',
  sidecar: 'to-participant',
};

const KEY_PATTERN = /^[0-9a-f]{64}$/;
const NAME_IN_HEADER = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export interface Caller {
  role: CallerRole;
  name: string;
}

function hmac(key: string, message: string): string {
  return createHmac('sha256', Buffer.from(key, 'hex')).update(message).digest('hex');
}

/**
 * A caller's expected proofs never change (a key and a purpose), so they are computed once: an HMAC on
 * every request cost each process about 0.1-0.3 ms of CPU at low load, where V8 runs that code cold.
 * The coordinator's are keyed by claimed caller and bounded, since the names come from request headers.
 */
const MAX_CACHED_CALLERS = 10_000;
const proofsByKeys = new WeakMap<readonly string[], Map<string, readonly Buffer[]>>();

function expectedProofs(keys: readonly string[], cacheKey: string, compute: () => Buffer[]): readonly Buffer[] {
  let byCaller = proofsByKeys.get(keys);
  if (byCaller === undefined) {
    byCaller = new Map();
    proofsByKeys.set(keys, byCaller);
  }
  let proofs = byCaller.get(cacheKey);
  if (proofs === undefined) {
    if (byCaller.size >= MAX_CACHED_CALLERS) byCaller.clear();
    proofs = compute();
    byCaller.set(cacheKey, proofs);
  }
  return proofs;
}

/** Constant-time: does `proof` (hex, already checked to be 64 digits) equal one of `expected`? */
function matchesOne(proof: string, expected: readonly Buffer[]): boolean {
  const claimed = Buffer.from(proof, 'hex');
  let found = false;
  // Every candidate is compared, so the time does not tell which key matched.
  for (const candidate of expected) if (timingSafeEqual(claimed, candidate)) found = true;
  return found;
}

/** A fresh cluster secret: 32 random bytes, hex. */
export function newClusterSecret(): string {
  return randomBytes(32).toString('hex');
}

export function isKey(value: unknown): value is string {
  return typeof value === 'string' && KEY_PATTERN.test(value);
}

export function deriveServiceKey(secret: string, service: string): string {
  return hmac(secret, `txmesh service ${service}`);
}

export function deriveClientKey(secret: string, client: string): string {
  return hmac(secret, `txmesh client ${client}`);
}

/** The Authorization header value a caller in `role` sends, holding `key` (its service or client key). */
export function authorizationHeader(role: CallerRole, name: string, key: string): string {
  return `Bearer ${role}:${name}:${hmac(key, PURPOSE[role])}`;
}

/** Reads a header into its claimed caller and proof; undefined when it is not ours or malformed. */
export function parseAuthorization(header: unknown): (Caller & { proof: string }) | undefined {
  if (typeof header !== 'string' || header.length > 300 || !header.startsWith('Bearer ')) return undefined;
  const [role, name, proof, extra] = header.slice(7).split(':');
  if (extra !== undefined || role === undefined || name === undefined || proof === undefined) return undefined;
  if (!Object.hasOwn(PURPOSE, role) || !NAME_IN_HEADER.test(name) || !KEY_PATTERN.test(proof)) return undefined;
  return { role: role as CallerRole, name, proof };
}

/**
 * Checks proofs against the cluster secrets (a coordinator). Returns the proven caller, or undefined.
 * Only the roles a coordinator can be called by are accepted.
 */
export function verifyWithSecrets(header: unknown, secrets: readonly string[]): Caller | undefined {
  // A header that verified once verifies again (a proof is a fixed HMAC, no time in it): a client sends the same
  // one on every begin, and parsing it and comparing proofs was about 2 % of a busy shard's time.
  const known = typeof header === 'string' ? verifiedHeaders.get(secrets)?.get(header) : undefined;
  if (known !== undefined) return known;
  const caller = verifyClaim(header, secrets);
  if (caller !== undefined) rememberVerified(secrets, header as string, caller);
  return caller;
}

/**
 * Headers that verified, per secrets list, bounded like the proofs. Only successes are kept, so a forged header
 * always takes the constant-time path; a look-up compares a header with a stored one only when their hashes
 * match, and a stored one is a valid header already.
 */
const verifiedHeaders = new WeakMap<readonly string[], Map<string, Caller>>();

function rememberVerified(secrets: readonly string[], header: string, caller: Caller): void {
  let byHeader = verifiedHeaders.get(secrets);
  if (byHeader === undefined) {
    byHeader = new Map();
    verifiedHeaders.set(secrets, byHeader);
  }
  if (byHeader.size >= MAX_CACHED_CALLERS) byHeader.clear();
  byHeader.set(header, Object.freeze(caller));
}

function verifyClaim(header: unknown, secrets: readonly string[]): Caller | undefined {
  const claim = parseAuthorization(header);
  if (!claim || (claim.role !== CallerRole.SERVICE && claim.role !== CallerRole.CLIENT)) return undefined;
  const role = claim.role;
  const expected = expectedProofs(secrets, `${role}:${claim.name}`, () =>
    secrets.map((secret) => {
      const key = role === CallerRole.SERVICE ? deriveServiceKey(secret, claim.name) : deriveClientKey(secret, claim.name);
      return Buffer.from(hmac(key, PURPOSE[role]), 'hex');
    }),
  );
  return matchesOne(claim.proof, expected) ? { role, name: claim.name } : undefined;
}

/**
 * Checks a proof against one service's keys (a sidecar or a participant): true when the header carries
 * `role`'s proof for `service` under one of `keys`.
 */
export function verifyWithServiceKeys(header: unknown, role: CallerRole, service: string, keys: readonly string[]): boolean {
  const claim = parseAuthorization(header);
  if (!claim || claim.role !== role || claim.name !== service) return false;
  return matchesOne(claim.proof, expectedProofs(keys, role, () => keys.map((key) => Buffer.from(hmac(key, PURPOSE[role]), 'hex'))));
}

/** Reads a secrets or keys file: one hex key per line, blank lines and # comments ignored; the first signs. */
export function parseKeyList(text: string, what: string): string[] {
  const keys = text
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter((line) => line.length > 0);
  if (keys.length === 0) throw new TypeError(`${what} holds no key`);
  for (const key of keys) if (!isKey(key)) throw new TypeError(`${what}: every line must be 64 hex digits (32 bytes)`);
  return keys;
}

/** The proven caller of a coordinator route, or TXM_UNAUTHENTICATED. */
export function authenticateWithSecrets(header: unknown, secrets: readonly string[]): Caller {
  const caller = verifyWithSecrets(header, secrets);
  if (caller !== undefined) return caller;
  if (parseAuthorization(header) === undefined) throw new TxmeshError('TXM_UNAUTHENTICATED', 'no txmesh credential in the Authorization header');
  throw new TxmeshError('TXM_UNAUTHENTICATED', 'the credential does not verify');
}

/** Passes when the header proves `role` for `service` under one of `keys`; else TXM_UNAUTHENTICATED or TXM_FORBIDDEN. */
export function assertServiceProof(header: unknown, role: CallerRole, service: string, keys: readonly string[]): void {
  const claim = parseAuthorization(header);
  if (!claim) throw new TxmeshError('TXM_UNAUTHENTICATED', 'no txmesh credential in the Authorization header');
  if (claim.role !== role || claim.name !== service) throw new TxmeshError('TXM_FORBIDDEN', `this route takes only ${role}:${service}`);
  if (!verifyWithServiceKeys(header, role, service, keys)) throw new TxmeshError('TXM_UNAUTHENTICATED', 'the credential does not verify');
}
