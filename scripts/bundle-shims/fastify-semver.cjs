// What fastify's plugin-utils.js uses of semver, for the bundles (scripts/bundle.mjs): semver's index loads every
// function, class and range at once, and one range module builds two comparators at load, which compiles
// semver's largest regular expressions: about 40 ms of CPU before any server starts. fastify calls these only
// when a plugin declares the fastify versions it supports, so each is loaded on that first call, from semver's
// own per-function modules (semver documents them for this).
'use strict';

module.exports = {
  get gt() {
    return require('semver/functions/gt');
  },
  get coerce() {
    return require('semver/functions/coerce');
  },
  get satisfies() {
    return require('semver/functions/satisfies');
  },
};
