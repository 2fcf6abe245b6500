// A stand-in for a module that a bundled dependency requires at load but uses only on paths txmesh never takes
// (scripts/bundle.mjs, LAZY_IN_FASTIFY): the real module is loaded on the first read of one of its properties.
'use strict';

module.exports = function lazyModule(load) {
  let real;
  const target = () => (real ??= load());
  return new Proxy(
    {},
    {
      get: (_emptyTarget, key) => target()[key],
      has: (_emptyTarget, key) => key in target(),
      ownKeys: () => Reflect.ownKeys(target()),
      getOwnPropertyDescriptor: (_emptyTarget, key) => {
        const descriptor = Reflect.getOwnPropertyDescriptor(target(), key);
        // A proxy may not report a property its (empty) target lacks as non-configurable.
        return descriptor && { ...descriptor, configurable: true };
      },
    },
  );
};
