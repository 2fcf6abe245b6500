#!/usr/bin/env node
// Runs every compiled test (*.test.js under each package's dist/ and dist/test/) on Node's own test
// runner: the tests run the JavaScript that ships, not the TypeScript sources. `npm test` builds first.
// Node 20's `--test` does not expand glob patterns itself, so the files are listed here.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleAll } from './bundle.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const only = process.argv.slice(2); // optional substrings to pick files, e.g. `npm test -- sidecar`

function collect(dir, out) {
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) collect(path, out);
    else if (entry.name.endsWith('.test.js')) out.push(relative(root, path));
  }
  return out;
}

const distDirs = [join(root, 'dist', 'test')];
for (const parent of ['packages', 'examples']) {
  for (const entry of readdirSync(join(root, parent), { withFileTypes: true })) {
    if (entry.isDirectory()) distDirs.push(join(root, parent, entry.name, 'dist'));
  }
}
const files = distDirs.flatMap((d) => collect(d, [])).filter((f) => only.length === 0 || only.some((o) => f.includes(o))).sort();
if (files.length === 0) {
  console.error('no compiled test files found: run `npm run build` first');
  process.exit(1);
}
// The cross-process tests spawn the bins, which run the bundles: bundle again what a `tsc -b` made stale, so
// the tests run what ships.
await bundleAll({ ifStale: true });
// Node 20 applies --test-timeout to a whole file as well as to each test. A file that installs packages from
// npm (the consumer test compiles better-sqlite3, about 1.5 minutes on an idle 2-core machine) gets a longer budget.
const LONG_FILES = ['dist/test/consumer.test.js'];
const isLong = (file) => LONG_FILES.some((long) => file.endsWith(long));
const groups = [
  { files: files.filter((f) => !isLong(f)), timeoutMs: 240_000 },
  { files: files.filter(isLong), timeoutMs: 15 * 60_000 },
].filter((group) => group.files.length > 0);
// --test-force-exit: a file whose tests have all finished ends even if a handle (a socket to a member a test
// killed, a pipe) is still open; cluster members exit on their own when their harness goes (TXMESH_EXIT_WITH_PARENT).
let status = 0;
for (const group of groups) {
  const result = spawnSync(
    process.execPath,
    ['--enable-source-maps', '--test', '--test-force-exit', '--test-concurrency=1', `--test-timeout=${group.timeoutMs}`, ...group.files],
    { cwd: root, stdio: 'inherit' },
  );
  if (result.status !== 0) status = result.status ?? 1;
}
process.exit(status);
