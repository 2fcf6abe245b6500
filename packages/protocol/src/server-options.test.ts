import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import Fastify from 'fastify';
import { NO_SCHEMA_COMPILERS } from './index.ts';

const loaded = (pkg: string): boolean => Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes(`/node_modules/${pkg}/`));

test('a server with NO_SCHEMA_COMPILERS serves without loading the schema compilers (ajv, fast-json-stringify\'s compiler)', async (t) => {
  const app = Fastify({ logger: false, schemaController: NO_SCHEMA_COMPILERS });
  t.after(() => app.close());
  app.post('/echo', async (request) => ({ got: request.body }));
  const answer = await app.inject({ method: 'POST', url: '/echo', payload: { a: 1 } });
  assert.equal(answer.statusCode, 200);
  assert.deepEqual(answer.json(), { got: { a: 1 } });
  assert.ok(loaded('fastify'), 'the check sees the modules fastify loaded');
  for (const pkg of ['ajv', '@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler']) assert.equal(loaded(pkg), false, `${pkg} is not loaded`);
});

test('a route that declares a JSON schema is refused when the server starts, with a sentence that says what to do', async (t) => {
  const app = Fastify({ logger: false, schemaController: NO_SCHEMA_COMPILERS });
  t.after(() => app.close());
  app.post('/typed', { schema: { body: { type: 'object' } } }, async () => ({}));
  await assert.rejects(async () => app.ready(), /do not compile JSON schemas: check the body with a @txmesh\/protocol validator/);
});
