import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  DEFAULT_LIMITS,
  ErrorCodes,
  TxmeshError,
  isTxId,
  newTxId,
  shardOfTxId,
  toTxmeshError,
  validateBatchRequest,
  validateBeginRequest,
  PROTOCOL_VERSION,
} from './index.ts';

test('every error code is documented in docs/design.md with its status', () => {
  const doc = readFileSync(new URL('../../../docs/design.md', import.meta.url), 'utf8');
  for (const [code, spec] of Object.entries(ErrorCodes)) {
    assert.ok(doc.includes(`| \`${code}\` | ${spec.status} |`), `${code} missing from the error table`);
    assert.ok(spec.message.length > 30 && spec.message.endsWith('.'), `${code} needs an actionable sentence`);
  }
});

test('tx ids name their shard and reject look-alikes', () => {
  const id = newTxId(7);
  assert.ok(isTxId(id));
  assert.equal(shardOfTxId(id), 7);
  assert.equal(shardOfTxId('7-abc'), undefined);
  assert.equal(shardOfTxId('x-abc-0123456789abcdef'), undefined);
  assert.notEqual(newTxId(0), newTxId(0));
});

test('begin requests: each kind of bad input is refused with its code', () => {
  const ok = { participants: [{ service: 'inventory', operations: [{ op: 'reserve', args: { sku: 'a' } }] }] };
  assert.deepEqual(validateBeginRequest(ok), ok);
  const code = (body: unknown): string => {
    try {
      validateBeginRequest(body);
      return 'accepted';
    } catch (err) {
      return (err as TxmeshError).code;
    }
  };
  assert.equal(code(null), 'TXM_BAD_REQUEST');
  assert.equal(code({ participants: [] }), 'TXM_NO_PARTICIPANTS');
  assert.equal(code({}), 'TXM_NO_PARTICIPANTS');
  assert.equal(code({ participants: [ok.participants[0], ok.participants[0]] }), 'TXM_DUPLICATE_PARTICIPANT');
  assert.equal(code({ participants: [{ service: 'bad name!', operations: [{ op: 'x' }] }] }), 'TXM_BAD_REQUEST');
  assert.equal(code({ participants: [{ service: 'inventory', operations: [] }] }), 'TXM_BAD_REQUEST');
  assert.equal(code({ participants: [{ service: 'inventory', operations: [{ op: 'x', args: [1] }] }] }), 'TXM_BAD_REQUEST');
  assert.equal(code({ ...ok, timeoutMs: 0 }), 'TXM_BAD_TIMEOUT');
  assert.equal(code({ ...ok, timeoutMs: 1.5 }), 'TXM_BAD_TIMEOUT');
  assert.equal(code({ ...ok, idempotencyKey: '' }), 'TXM_BAD_REQUEST');
  const many = Array.from({ length: DEFAULT_LIMITS.maxParticipants + 1 }, (_, i) => ({ service: `s${i}`, operations: [{ op: 'x' }] }));
  assert.equal(code({ participants: many }), 'TXM_TOO_MANY_PARTICIPANTS');
});

test('batch requests: version, actions and ids are checked', () => {
  const txId = newTxId(0);
  const good = { protocolVersion: PROTOCOL_VERSION, items: [{ action: 'prepare', txId, service: 's', operations: [{ op: 'x' }], deadline: 5 }] };
  assert.equal(validateBatchRequest(good).items.length, 1);
  assert.throws(() => validateBatchRequest({ ...good, protocolVersion: 99 }), { code: 'TXM_PROTOCOL_VERSION' });
  assert.throws(() => validateBatchRequest({ protocolVersion: PROTOCOL_VERSION, items: [{ action: 'prepare', txId, service: 's' }] }), { code: 'TXM_BAD_REQUEST' });
  assert.throws(() => validateBatchRequest({ protocolVersion: PROTOCOL_VERSION, items: [{ action: 'drop', txId, service: 's' }] }), { code: 'TXM_BAD_REQUEST' });
  assert.throws(() => validateBatchRequest({ protocolVersion: PROTOCOL_VERSION, items: [{ action: 'commit', txId: 'nope', service: 's' }] }), { code: 'TXM_BAD_REQUEST' });
});

test('framework errors map to coded errors, unknown ones to TXM_INTERNAL without leaking', () => {
  assert.equal(toTxmeshError({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 }).code, 'TXM_BODY_TOO_LARGE');
  assert.equal(toTxmeshError({ code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415 }).code, 'TXM_UNSUPPORTED_MEDIA_TYPE');
  assert.equal(toTxmeshError(new SyntaxError('bad')).code, 'TXM_BAD_REQUEST');
  const internal = toTxmeshError(new Error('secret stack detail'));
  assert.equal(internal.code, 'TXM_INTERNAL');
  assert.ok(!JSON.stringify(internal.toBody()).includes('secret'));
});
