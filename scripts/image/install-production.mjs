#!/usr/bin/env node
// The production install of the container image, also run by test/image.test.ts so that what the test checks
// is what the image gets: node install-production.mjs <built repo> <target dir> <workspace>...
//
// 1. the lockfile and every workspace's package.json (npm ci checks them against each other);
// 2. `npm ci --omit=dev --ignore-scripts` for the named workspaces: their production dependencies only;
// 3. each named workspace's shipped files, as `npm pack` would put them in its tarball (its "files" field);
// 4. the better-sqlite3 addon the builder compiled (--ignore-scripts skipped compiling it again here);
// 5. workspaces not named are removed, with their links, so nothing resolves to a half-copied package.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const [source, target, ...workspaces] = process.argv.slice(2).map((arg, i) => (i < 2 ? resolve(arg) : arg));
if (!source || !target || workspaces.length === 0) {
  process.stderr.write('usage: install-production.mjs <built repo> <target dir> <workspace>...\n');
  process.exit(2);
}

const rootManifest = JSON.parse(readFileSync(join(source, 'package.json'), 'utf8'));
for (const w of workspaces) {
  if (!rootManifest.workspaces.includes(w)) throw new Error(`${w} is not a workspace of ${source}`);
}

mkdirSync(target, { recursive: true });
// The root manifest without its lifecycle scripts: "prepare" builds with TypeScript, a dev dependency.
writeFileSync(join(target, 'package.json'), `${JSON.stringify({ ...rootManifest, scripts: {} }, null, 2)}\n`);
copyFileSync(join(source, 'package-lock.json'), join(target, 'package-lock.json'));
for (const w of rootManifest.workspaces) {
  mkdirSync(join(target, w), { recursive: true });
  copyFileSync(join(source, w, 'package.json'), join(target, w, 'package.json'));
}

const npm = (args, cwd) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
npm(['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', ...workspaces.map((w) => `--workspace=${w}`)], target);

for (const w of workspaces) {
  const [packed] = JSON.parse(npm(['pack', '--dry-run', '--json', '--ignore-scripts', `--workspace=${w}`], source));
  for (const { path } of packed.files) {
    mkdirSync(dirname(join(target, w, path)), { recursive: true });
    copyFileSync(join(source, w, path), join(target, w, path));
  }
  const bin = JSON.parse(readFileSync(join(source, w, 'package.json'), 'utf8')).bin ?? {};
  for (const file of Object.values(bin)) chmodSync(join(target, w, file), 0o755);
}

const addon = join('node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');
if (existsSync(join(target, 'node_modules', 'better-sqlite3'))) {
  mkdirSync(dirname(join(target, addon)), { recursive: true });
  copyFileSync(join(source, addon), join(target, addon));
}

const kept = new Set(workspaces);
for (const w of rootManifest.workspaces) {
  if (kept.has(w)) continue;
  rmSync(join(target, w), { recursive: true, force: true });
  const parent = dirname(join(target, w));
  if (existsSync(parent) && readdirSync(parent).length === 0) rmSync(parent, { recursive: true });
}
for (const scope of ['node_modules', join('node_modules', '@txmesh')]) {
  const dir = join(target, scope);
  for (const entry of readdirSync(dir)) {
    const link = join(dir, entry);
    if (lstatSync(link).isSymbolicLink() && !existsSync(link)) rmSync(link);
  }
}
const binDir = join(target, 'node_modules', '.bin');
if (existsSync(binDir)) {
  for (const entry of readdirSync(binDir)) if (!existsSync(join(binDir, entry))) rmSync(join(binDir, entry));
}
process.stdout.write(`installed ${workspaces.join(', ')} into ${target}\n`);
