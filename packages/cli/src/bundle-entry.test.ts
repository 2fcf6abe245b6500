import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BUNDLE_MANIFEST, BundleSwitchError, bundleIsFresh, entryPoint } from './bundle-entry.ts';

const PACKAGE_ROOT = new URL('../', import.meta.url);

/** A package folder with dist/.tsbuildinfo and a bundle recorded as built from it. */
function fakePackage(root: string, name: string): { url: URL; buildInfo: string } {
  const dir = join(root, name);
  mkdirSync(join(dir, 'dist'), { recursive: true });
  mkdirSync(join(dir, 'bundle'));
  const buildInfo = join(dir, 'dist', '.tsbuildinfo');
  writeFileSync(buildInfo, '{}');
  const inputs = { '../dist/.tsbuildinfo': statSync(buildInfo).mtimeMs, '../../elsewhere/dist/.tsbuildinfo': 1 };
  writeFileSync(join(dir, 'bundle', BUNDLE_MANIFEST), JSON.stringify({ inputs }));
  return { url: pathToFileURL(`${dir}/`), buildInfo };
}

describe('which build a bin runs', () => {
  const root = mkdtempSync(join(tmpdir(), 'txmesh-bundle-entry-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('runs the bundle while every compile it was built from is unchanged (an input that is absent, as in an installed package, does not count)', () => {
    const { url } = fakePackage(root, 'fresh');
    assert.equal(bundleIsFresh(url), true);
    assert.equal(entryPoint(url, 'main.js', {}).href, new URL('bundle/main.js', url).href);
  });

  it('runs dist/ once a tsc -b has rewritten a build-info file since, or when there is no bundle, or with TXMESH_BUNDLE=off', () => {
    const stale = fakePackage(root, 'stale');
    utimesSync(stale.buildInfo, new Date(), new Date(Date.now() + 5_000));
    assert.equal(entryPoint(stale.url, 'main.js', {}).href, new URL('dist/main.js', stale.url).href);

    const bare = pathToFileURL(`${join(root, 'no-bundle')}/`);
    assert.equal(bundleIsFresh(bare), false);
    assert.equal(entryPoint(bare, 'main.js', {}).href, new URL('dist/main.js', bare).href);

    const fresh = fakePackage(root, 'switched-off');
    assert.equal(entryPoint(fresh.url, 'main.js', { TXMESH_BUNDLE: ' OFF ' }).href, new URL('dist/main.js', fresh.url).href);
    assert.equal(entryPoint(fresh.url, 'main.js', { TXMESH_BUNDLE: 'on' }).href, new URL('bundle/main.js', fresh.url).href);
    assert.equal(entryPoint(fresh.url, 'main.js', { TXMESH_BUNDLE: '0' }).href, new URL('dist/main.js', fresh.url).href);
  });

  it('refuses a TXMESH_BUNDLE that is neither on nor off, in the function and at the bin, before loading anything', () => {
    const fresh = fakePackage(root, 'typo');
    assert.throws(() => entryPoint(fresh.url, 'main.js', { TXMESH_BUNDLE: 'of' }), (err: unknown) => err instanceof BundleSwitchError && /TXMESH_BUNDLE must be on or off.*"of"/.test(err.message));
    const bin = fileURLToPath(new URL('bin/txmesh.mjs', PACKAGE_ROOT));
    const run = spawnSync(process.execPath, [bin, 'help'], { env: { ...process.env, TXMESH_BUNDLE: 'dsit' }, encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 2, run.stderr);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^txmesh: TXMESH_BUNDLE must be on or off \(or unset\), got "dsit"/);
  });

  it('the repository\'s own txmesh bundle, after a build, is fresh and answers like dist/', (t) => {
    if (!bundleIsFresh(PACKAGE_ROOT)) {
      // Built without esbuild (a checkout whose node_modules predate it): the bin runs dist/, as tested elsewhere.
      t.skip('no fresh bundle in this checkout (npm install && npm run build makes one)');
      return;
    }
    const bin = fileURLToPath(new URL('bin/txmesh.mjs', PACKAGE_ROOT));
    const runs = ['on', 'off'].map((mode) => spawnSync(process.execPath, [bin, 'help'], { env: { ...process.env, TXMESH_BUNDLE: mode }, encoding: 'utf8', timeout: 30_000 }));
    for (const run of runs) assert.equal(run.status, 0, run.stderr);
    assert.equal(runs[0]!.stdout, runs[1]!.stdout);
  });
});
