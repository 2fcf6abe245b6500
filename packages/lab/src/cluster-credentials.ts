/**
 * The credentials of one lab cluster: a fresh cluster secret per run, written with each service's key
 * into the run's data directory (mode 0600), and the headers a test or the lab's tools send.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CallerRole, authorizationHeader, deriveClientKey, deriveServiceKey, newClusterSecret } from '@txmesh/protocol';

/** The client name the lab's own tools (demo, bench, chaos, tests) begin transactions as. */
export const LAB_CLIENT = 'lab';

export class ClusterCredentials {
  readonly secretFile: string;
  readonly #secret: string;
  readonly #dir: string;

  constructor(dataDir: string) {
    this.#dir = join(dataDir, 'credentials');
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    this.#secret = newClusterSecret();
    this.secretFile = join(this.#dir, 'cluster.secret');
    writeFileSync(this.secretFile, `${this.#secret}\n`, { mode: 0o600 });
  }

  /** Writes (once per call) and returns the key file of `service`, for its sidecar and the service. */
  serviceKeyFile(service: string): string {
    const file = join(this.#dir, `${service}.key`);
    writeFileSync(file, `${this.serviceKeyFileContent(service)}\n`, { mode: 0o600 });
    return file;
  }

  /** The service key of `service` itself (what its key file holds). */
  serviceKeyFileContent(service: string): string {
    return deriveServiceKey(this.#secret, service);
  }

  /** Writes and returns the key file of the lab client, for `txmesh begin|status|… --client lab --key-file FILE`. */
  clientKeyFile(): string {
    const file = join(this.#dir, `${LAB_CLIENT}.key`);
    writeFileSync(file, `${this.client.key}\n`, { mode: 0o600 });
    return file;
  }

  /** For createTxmeshClient({ credential }). */
  get client(): { name: string; key: string } {
    return { name: LAB_CLIENT, key: deriveClientKey(this.#secret, LAB_CLIENT) };
  }

  /** Headers of the lab client, for calls to a coordinator. */
  get clientHeaders(): Record<string, string> {
    return { authorization: authorizationHeader(CallerRole.CLIENT, LAB_CLIENT, this.client.key) };
  }

  /** Headers a coordinator sends to the sidecar of `service` (its batch and stats routes). */
  coordinatorHeaders(service: string): Record<string, string> {
    return { authorization: authorizationHeader(CallerRole.COORDINATOR, service, deriveServiceKey(this.#secret, service)) };
  }

  /** Headers the sidecar of `service` sends to the service's participant routes. */
  sidecarHeaders(service: string): Record<string, string> {
    return { authorization: authorizationHeader(CallerRole.SIDECAR, service, deriveServiceKey(this.#secret, service)) };
  }
}
