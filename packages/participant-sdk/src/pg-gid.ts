/**
 * The PostgreSQL gid of a branch (native mode), apart from the storage that uses it so the package's index can
 * export it without loading the PostgreSQL participant.
 */
const GID_PREFIX = 'txm:';

/** The PostgreSQL gid of this service's branch of txId. */
export function gidOf(service: string, txId: string): string {
  return `${GID_PREFIX}${service}:${txId}`;
}
