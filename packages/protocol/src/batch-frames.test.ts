import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BatchFrameReader, encodeBatchFrame } from './batch-frames.ts';
import { TxmeshError } from './errors.ts';

test('batch frames come out whole and in order however the stream is cut, several per chunk or one across many', () => {
  const sent = [
    { id: 1, status: 0, payload: '{"items":[]}' },
    { id: 0xfffffffe, status: 200, payload: JSON.stringify({ text: 'é'.repeat(3000) }) },
    { id: 3, status: 503, payload: '' },
  ];
  const stream = Buffer.concat(sent.map((f) => encodeBatchFrame(f.id, f.status, f.payload)));
  for (const size of [1, 7, 10, 64, stream.length]) {
    const reader = new BatchFrameReader(1 << 20);
    const received = [];
    for (let at = 0; at < stream.length; at += size) received.push(...reader.push(stream.subarray(at, at + size)));
    assert.deepEqual(received, sent, `cut every ${size} bytes`);
  }
});

test('a frame announcing more than the limit is refused before its bytes arrive, naming its call', () => {
  const reader = new BatchFrameReader(100);
  assert.deepEqual(reader.push(encodeBatchFrame(4, 0, 'x'.repeat(100))).length, 1, 'the limit itself passes');
  const header = encodeBatchFrame(9, 0, 'y'.repeat(101)).subarray(0, 10);
  assert.throws(() => reader.push(header), (err: unknown) => err instanceof TxmeshError && err.code === 'TXM_BODY_TOO_LARGE');
  assert.equal(reader.refusedId, 9);
});
