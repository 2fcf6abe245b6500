import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ROOT_CONTEXT, createContextKey } from '@opentelemetry/api';
import { SynchronousContextManager } from './synchronous-context-manager.ts';

const KEY = createContextKey('test');

describe('synchronous context manager', () => {
  it('holds a context while the callback runs, nested, and restores the previous one after (also on a throw)', () => {
    const manager = new SynchronousContextManager();
    const outer = ROOT_CONTEXT.setValue(KEY, 'outer');
    const inner = ROOT_CONTEXT.setValue(KEY, 'inner');
    const seen = manager.with(outer, (a: number, b: number) => {
      const nested = manager.with(inner, () => manager.active().getValue(KEY));
      return [a + b, nested, manager.active().getValue(KEY)];
    }, undefined, 1, 2);
    assert.deepEqual(seen, [3, 'inner', 'outer']);
    assert.equal(manager.active(), ROOT_CONTEXT);
    assert.throws(() => manager.with(outer, () => {
      throw new Error('boom');
    }), /boom/);
    assert.equal(manager.active(), ROOT_CONTEXT);
  });

  it('does not follow a promise: after an await the context is the one of whoever resumed it', async () => {
    const manager = new SynchronousContextManager();
    const ctx = ROOT_CONTEXT.setValue(KEY, 'tx');
    const values = await manager.with(ctx, async () => {
      const before = manager.active().getValue(KEY);
      await Promise.resolve();
      return [before, manager.active().getValue(KEY)];
    });
    assert.deepEqual(values, ['tx', undefined]);
  });

  it('binds a function to a context, keeping its this and arguments', () => {
    const manager = new SynchronousContextManager();
    const ctx = ROOT_CONTEXT.setValue(KEY, 'bound');
    const target = { n: 2, read(this: { n: number }, m: number) { return [this.n * m, manager.active().getValue(KEY)]; } };
    const bound = manager.bind(ctx, target.read);
    assert.deepEqual(bound.call(target, 3), [6, 'bound']);
    assert.equal(manager.active(), ROOT_CONTEXT);
    const emitter = { on() {} };
    assert.equal(manager.bind(ctx, emitter), emitter, 'anything but a function is returned as it is');
  });
});
