/**
 * createPgParticipant as the package's index exports it: the PostgreSQL participant and its storages load when a
 * service creates one, so a SQLite service does not read them before its ready line.
 */
import type { PgParticipant, PgParticipantOptions } from './pg-participant.ts';

export async function createPgParticipant(options: PgParticipantOptions): Promise<PgParticipant> {
  const { createPgParticipant: create } = await import('./pg-participant.ts');
  return create(options);
}
