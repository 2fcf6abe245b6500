#!/usr/bin/env node
// The txmesh command: compiled JavaScript only (run `npm run build` in a clone first). It runs the bundle that
// `npm run build` makes from dist/ (fewer files to load: each role is ready sooner), or dist/ itself when there
// is no bundle or a `tsc -b` has changed the compiled packages since (packages/cli/src/bundle-entry.ts).
import { entryPoint, reportBundleSwitchError } from '../dist/bundle-entry.js';
let entry;
try {
  entry = entryPoint(new URL('..', import.meta.url), 'main.js');
} catch (err) {
  process.exitCode = reportBundleSwitchError(err, 'txmesh');
}
if (entry !== undefined) {
  const { main } = await import(entry.href);
  process.exitCode = await main(process.argv.slice(2));
}
