import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  DEFAULT_LIMITS,
  ErrorCodes,
  Reason,
  Reasons,
  TxmeshError,
  isErrorCode,
  isReason,
  isReasonToken,
  validateBatchResponse,
  isTxId,
  newTxId,
  shardOfTxId,
  toTxmeshError,
  installTxmeshErrorHandlers,
  validateBatchRequest,
  validateBeginRequest,
  nestsDeeperThan,
  MAX_ARGS_DEPTH,
  PROTOCOL_VERSION,
} from './index.ts';

test('every error code is documented in docs/design.md with its status', () => {
  const doc = readFileSync(new URL('../../../docs/design.md', import.meta.url), 'utf8');
  for (const [code, spec] of Object.entries(ErrorCodes)) {
    assert.ok(doc.includes(`| \`${code}\` | ${spec.status} |`), `${code} missing from the error table`);
    assert.ok(spec.message.length > 30 && spec.message.endsWith('.'), `${code} needs an actionable sentence`);
  }
});

test('every reason is documented in docs/design.md, says who gives it, and is a token that is not an error code', () => {
  const doc = readFileSync(new URL('../../../docs/design.md', import.meta.url), 'utf8');
  for (const [reason, spec] of Object.entries(Reasons)) {
    assert.ok(doc.includes(`| \`${reason}\` | ${spec.source} |`), `${reason} missing from the reasons table`);
    assert.ok(spec.message.length > 30 && spec.message.endsWith('.'), `${reason} needs a sentence`);
    assert.ok(isReasonToken(reason) && !isErrorCode(reason), reason);
    assert.equal(Reason[reason as Reason], reason);
  }
  assert.ok(isReason('LOCK_CONFLICT') && !isReason('OUT_OF_STOCK') && !isReason('toString'));
  for (const free of ['connect ECONNREFUSED 127.0.0.1:40867', '', 'x'.repeat(65), 'out of stock']) assert.equal(isReasonToken(free), false, free);
});

test('batch answers: shape and version are checked; a free-text reason becomes BAD_ANSWER with the text in the message', () => {
  const txId = newTxId(0);
  const ok = { protocolVersion: PROTOCOL_VERSION, results: [{ txId, action: 'prepare', status: 'no', reason: 'OUT_OF_STOCK', message: 'only 2 left' }] };
  assert.deepEqual(validateBatchResponse(ok), ok);
  assert.throws(() => validateBatchResponse({ ...ok, protocolVersion: 2 }), { code: 'TXM_PROTOCOL_VERSION' });
  assert.throws(() => validateBatchResponse({ protocolVersion: PROTOCOL_VERSION }), { code: 'TXM_BAD_REQUEST' });
  assert.throws(() => validateBatchResponse({ protocolVersion: PROTOCOL_VERSION, results: [{ txId, action: 'prepare', status: 'maybe' }] }), { code: 'TXM_BAD_REQUEST' });
  // The refusal names the item it is about.
  assert.throws(() => validateBatchResponse({ protocolVersion: PROTOCOL_VERSION, results: [{ txId, action: 'prepare', status: 'ok' }, { txId, action: 'prepare', status: 'maybe' }] }), {
    code: 'TXM_BAD_REQUEST',
    details: 'results[1].status must be ok, no or error',
  });
  assert.throws(() => validateBatchResponse({ protocolVersion: PROTOCOL_VERSION, results: [{ txId, action: 'prepare', status: 'no', reason: 7 }] }), { code: 'TXM_BAD_REQUEST' });
  const free = validateBatchResponse({ protocolVersion: PROTOCOL_VERSION, results: [{ txId, action: 'prepare', status: 'error', reason: 'connect ECONNREFUSED 127.0.0.1:9' }] });
  assert.equal(free.results[0]?.status, 'error');
  assert.equal(free.results[0]?.reason, 'BAD_ANSWER');
  assert.match(free.results[0]?.message ?? '', /ECONNREFUSED 127\.0\.0\.1:9/);
  const long = validateBatchResponse({ protocolVersion: PROTOCOL_VERSION, results: [{ txId, action: 'commit', status: 'ok', message: 'x'.repeat(5000) }] });
  assert.ok((long.results[0]?.message ?? '').length <= 1001);
});

test('tx ids name their shard and reject look-alikes', () => {
  const id = newTxId(7);
  assert.ok(isTxId(id));
  assert.equal(shardOfTxId(id), 7);
  assert.equal(shardOfTxId('7-abc'), undefined);
  assert.equal(shardOfTxId('x-abc-0123456789abcdef'), undefined);
  assert.notEqual(newTxId(0), newTxId(0));
});

test('tx ids stay unique and well formed across refills of the random pool (512 ids per refill)', () => {
  const now = Date.now();
  const ids = Array.from({ length: 5000 }, () => newTxId(3, now));
  assert.equal(new Set(ids).size, ids.length);
  assert.ok(ids.every((id) => isTxId(id) && shardOfTxId(id) === 3));
  // Not a pool of zeros nor a repeating block: the random parts of consecutive refills differ.
  const randomPart = (id: string): string => id.split('-')[2]!;
  assert.notEqual(randomPart(ids[0]!), '0'.repeat(16));
  assert.notEqual(randomPart(ids[0]!), randomPart(ids[512]!));
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
  // One participant may not bring more operations than the limit (each is work and locks at the service).
  const ops = (n: number) => Array.from({ length: n }, (_, i) => ({ op: `op${i}` }));
  assert.equal(code({ participants: [{ service: 'inventory', operations: ops(DEFAULT_LIMITS.maxOperationsPerParticipant) }] }), 'accepted');
  assert.equal(code({ participants: [{ service: 'inventory', operations: ops(DEFAULT_LIMITS.maxOperationsPerParticipant + 1) }] }), 'TXM_BAD_REQUEST');
});

test('operation args: nesting is bounded at MAX_ARGS_DEPTH levels, in objects and arrays alike, and a refusal names the place', () => {
  const nested = (levels: number, inArrays: boolean): Record<string, unknown> => {
    let value: unknown = 1;
    for (let i = 0; i < levels; i++) value = inArrays && i % 2 === 0 ? [value] : { v: value };
    return { top: value };
  };
  assert.equal(nestsDeeperThan({ a: 1, b: 'x', c: null }, 1), false);
  assert.equal(nestsDeeperThan({ a: {} }, 1), true);
  for (const inArrays of [false, true]) {
    assert.equal(nestsDeeperThan(nested(MAX_ARGS_DEPTH - 1, inArrays), MAX_ARGS_DEPTH), false);
    assert.equal(nestsDeeperThan(nested(MAX_ARGS_DEPTH, inArrays), MAX_ARGS_DEPTH), true);
  }
  // Inherited enumerable keys are not the object's own: not walked.
  const inherits = Object.create({ deep: nested(MAX_ARGS_DEPTH * 2, false) }) as object;
  assert.equal(nestsDeeperThan(inherits, MAX_ARGS_DEPTH), false);
  const message = (body: unknown): string => {
    try {
      validateBeginRequest(body);
      return 'accepted';
    } catch (err) {
      return (err as TxmeshError).message;
    }
  };
  const fine = { service: 'inventory', operations: [{ op: 'reserve', args: nested(MAX_ARGS_DEPTH - 1, true) }] };
  assert.equal(message({ participants: [fine] }), 'accepted');
  const tooDeep = { service: 'payment', operations: [{ op: 'charge' }, { op: 'charge', args: nested(MAX_ARGS_DEPTH, true) }] };
  assert.match(message({ participants: [fine, tooDeep] }), /participants\[1\]\.operations\[1\]\.args nest deeper than 32 levels/);
  assert.match(message({ participants: [fine, { service: 'order', operations: [{ op: 'bad op' }] }] }), /participants\[1\]\.operations\[0\]\.op must be a name/);
});

test('batch requests: version, actions and ids are checked', () => {
  const txId = newTxId(0);
  const good = { protocolVersion: PROTOCOL_VERSION, items: [{ action: 'prepare', txId, service: 's', operations: [{ op: 'x' }], deadline: 5 }] };
  assert.equal(validateBatchRequest(good).items.length, 1);
  // A forged or broken prepare with more operations than a coordinator would ever send is refused whole.
  const tooMany = Array.from({ length: DEFAULT_LIMITS.maxOperationsPerParticipant + 1 }, () => ({ op: 'x' }));
  assert.throws(() => validateBatchRequest({ ...good, items: [{ ...good.items[0], operations: tooMany }] }), { code: 'TXM_BAD_REQUEST' });
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

test('fromBody reverses toBody and refuses bodies that are not ours', () => {
  const sent = new TxmeshError('TXM_WRONG_SHARD', 'belongs to shard 1');
  const back = TxmeshError.fromBody(JSON.parse(JSON.stringify(sent.toBody())));
  assert.ok(back instanceof TxmeshError);
  assert.deepEqual([back.code, back.status, back.details], ['TXM_WRONG_SHARD', 421, 'belongs to shard 1']);
  assert.equal(TxmeshError.fromBody({ error: { code: 'TXM_NOT_READY' } })?.details, undefined);
  for (const foreign of [undefined, null, 'TXM_INTERNAL', [], {}, { error: 'x' }, { error: { code: 'NOPE' } }, { error: { code: 'toString' } }]) {
    assert.equal(TxmeshError.fromBody(foreign), undefined, JSON.stringify(foreign));
  }
});

test('the server glue answers from the catalogue, sets Retry-After, logs only the unexpected', () => {
  const logged: string[] = [];
  const sent: { status?: number; headers: Record<string, string>; body?: unknown } = { headers: {} };
  const reply = {
    code(status: number) {
      sent.status = status;
      return reply;
    },
    header(name: string, value: string) {
      sent.headers[name] = value;
      return reply;
    },
    send(body?: unknown) {
      sent.body = body;
    },
  };
  const request = { method: 'GET', url: '/v1/nothing?secret=1', log: { error: (_: object, message: string) => void logged.push(message) } };
  let onError: ((err: unknown, req: typeof request, rep: typeof reply) => void) | undefined;
  let onNotFound: ((req: typeof request, rep: typeof reply) => void) | undefined;
  installTxmeshErrorHandlers({
    setErrorHandler: (handler) => (onError = handler),
    setNotFoundHandler: (handler) => (onNotFound = handler),
  });

  onNotFound!(request, reply);
  assert.equal(sent.status, 404);
  assert.deepEqual(sent.body, new TxmeshError('TXM_NOT_FOUND', 'GET /v1/nothing').toBody());

  onError!({ code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 }, request, reply);
  assert.equal(sent.status, 413);
  const overloaded = Object.assign(new TxmeshError('TXM_OVERLOADED'), { retryAfterSeconds: 3 });
  onError!(overloaded, request, reply);
  assert.deepEqual([sent.status, sent.headers['retry-after']], [429, '3']);
  assert.deepEqual(logged, [], 'refusals are not errors of this process');
  onError!(new Error('disk on fire'), request, reply);
  assert.equal(sent.status, 500);
  assert.deepEqual(logged, ['GET /v1/nothing failed unexpectedly']);
});
