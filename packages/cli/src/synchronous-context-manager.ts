/**
 * A context manager whose `context.with` holds only while its callback runs synchronously: nothing follows
 * promises. The txmesh roles need no more (every span's parent is passed explicitly, the coordinator injects
 * a batch's traceparent before its first await, and log lines name their trace ids themselves), and it spares
 * them what AsyncLocalStorage costs on Node 20: once used, its promise hooks run for every promise in the
 * process, on the transaction path included (docs/benchmarks.md, issue 15).
 */
import { ROOT_CONTEXT, type Context, type ContextManager } from '@opentelemetry/api';

export class SynchronousContextManager implements ContextManager {
  #active: Context = ROOT_CONTEXT;

  active(): Context {
    return this.#active;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(context: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    const previous = this.#active;
    this.#active = context;
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.#active = previous;
    }
  }

  bind<T>(context: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const fn = target as (...args: unknown[]) => unknown;
    const manager = this;
    return function (this: unknown, ...args: unknown[]) {
      return manager.with(context, () => fn.apply(this, args));
    } as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.#active = ROOT_CONTEXT;
    return this;
  }
}
