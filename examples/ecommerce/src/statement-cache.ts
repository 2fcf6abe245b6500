import type Database from 'better-sqlite3';

/**
 * Prepares a service's statements once per database handle. Hooks receive the handle in their context,
 * so statements are keyed by it rather than captured from the builder.
 */
export function statementCache<T>(build: (db: Database.Database) => T): (db: Database.Database) => T {
  const cache = new WeakMap<Database.Database, T>();
  return (db) => {
    let statements = cache.get(db);
    if (statements === undefined) {
      statements = build(db);
      cache.set(db, statements);
    }
    return statements;
  };
}
