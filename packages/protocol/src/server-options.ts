/**
 * One fastify option every txmesh server shares. Our routes check bodies with this package's validators,
 * never with JSON schemas, yet fastify loads its schema compilers (ajv and fast-json-stringify, about 110
 * modules) for every app unless it is handed its own: that cost each process about 100 ms of its start and
 * a few MB. These compilers refuse, so a route that declares a schema fails when it is registered.
 */
function refuseSchema(): never {
  throw new Error('txmesh servers do not compile JSON schemas: check the body with a @txmesh/protocol validator in the handler');
}

/** Pass as fastify's `schemaController` option. */
export const NO_SCHEMA_COMPILERS = {
  compilersFactory: { buildValidator: () => refuseSchema, buildSerializer: () => refuseSchema },
} as const;
