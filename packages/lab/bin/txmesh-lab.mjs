#!/usr/bin/env node
// The lab's commands (demo, bench, chaos, service, null-echo), also reachable as `txmesh <command>`. The member
// processes a harness spawns (an example service, a bank, the null echo and null sidecar) run the lab's bundle
// when it is fresh, as the operator command does (scripts/bundle.mjs); the harness commands run dist/.
import { entryPoint, reportBundleSwitchError } from 'txmesh/bundle-entry';
const MEMBER_COMMANDS = new Set(['service', 'bank', 'null-echo', 'null-sidecar']);
const argv = process.argv.slice(2);
const packageRoot = new URL('..', import.meta.url);
let entry;
try {
  entry = MEMBER_COMMANDS.has(argv[0]) ? entryPoint(packageRoot, 'main.js') : new URL('dist/main.js', packageRoot);
} catch (err) {
  process.exitCode = reportBundleSwitchError(err, 'txmesh-lab');
}
if (entry !== undefined) {
  const { labMain } = await import(entry.href);
  process.exitCode = await labMain(argv);
}
