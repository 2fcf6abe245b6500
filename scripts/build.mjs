#!/usr/bin/env node
// `npm run build`: removes compiled files whose TypeScript source is gone, runs `tsc -b`, then bundles the
// process entry points (scripts/bundle.mjs).
// tsc never deletes outputs of a deleted or renamed source, and a stale dist/*.js would still be packed into
// a tarball (`files: ["dist"]`) and could still be imported by a test.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleAll } from './bundle.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const OUTPUT = /\.(js|d\.ts)(\.map)?$/;

function prune(srcDir, distDir) {
  if (!existsSync(distDir)) return 0;
  let removed = 0;
  for (const entry of readdirSync(distDir, { withFileTypes: true })) {
    const out = join(distDir, entry.name);
    if (entry.isDirectory()) {
      removed += prune(join(srcDir, entry.name), out);
      continue;
    }
    if (!OUTPUT.test(entry.name)) continue;
    const stem = entry.name.replace(OUTPUT, '');
    if (!existsSync(join(srcDir, `${stem}.ts`))) {
      rmSync(out);
      removed += 1;
    }
  }
  return removed;
}

let removed = prune(join(root, 'test'), join(root, 'dist', 'test'));
for (const parent of ['packages', 'examples']) {
  for (const entry of readdirSync(join(root, parent), { withFileTypes: true })) {
    if (entry.isDirectory()) removed += prune(join(root, parent, entry.name, 'src'), join(root, parent, entry.name, 'dist'));
  }
}
if (removed > 0) console.error(`build: removed ${removed} compiled files whose source is gone`);
const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b'], { cwd: root, stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
await bundleAll();
