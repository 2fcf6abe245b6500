/**
 * Which build a process entry point runs: its package's bundle (bundle/, written by `npm run build`: each
 * role's modules and the third-party code it loads before ready in a few ESM files, which a role loads in about
 * half the CPU time of dist/'s 300-odd module files) or the per-file compiled output in dist/.
 *
 * The bundle is built from dist/. It runs only while it is as new as the compile it was built from: each
 * package's dist/.tsbuildinfo is recorded in bundle/built-from.json, and a `tsc -b` since (which rewrites them)
 * sends the process back to dist/ until the next `npm run build` (or test run) bundles again. An installed
 * package has no .tsbuildinfo and runs its bundle. TXMESH_BUNDLE=off runs dist/ always (to compare the two).
 *
 * This module is the first a bin loads, before the package itself: it imports node: modules only.
 */
import { readFileSync, statSync } from 'node:fs';

/** What scripts/bundle.mjs writes next to a bundle: each input's build-info file (relative to bundle/) and its mtime then. */
export interface BundleManifest {
  inputs: Record<string, number>;
}

export const BUNDLE_DIR = 'bundle/';
export const BUNDLE_MANIFEST = 'built-from.json';

/** Whether the bundle under `packageRoot` exists and no compile it was built from has changed since. */
export function bundleIsFresh(packageRoot: URL): boolean {
  const bundle = new URL(BUNDLE_DIR, packageRoot);
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(readFileSync(new URL(BUNDLE_MANIFEST, bundle), 'utf8')) as BundleManifest;
  } catch {
    return false;
  }
  for (const [path, builtMtimeMs] of Object.entries(manifest.inputs)) {
    // Absent: an installed package, whose tarball carries no build-info files.
    const mtimeMs = statSync(new URL(path, bundle), { throwIfNoEntry: false })?.mtimeMs;
    if (mtimeMs !== undefined && mtimeMs !== builtMtimeMs) return false;
  }
  return true;
}

/** TXMESH_BUNDLE set to something that is neither on nor off: the bin says so and starts nothing. */
export class BundleSwitchError extends Error {
  readonly exitCode = 2;
  constructor(value: string) {
    super(`TXMESH_BUNDLE must be on or off (or unset), got "${value}": unset it to run the bundle when it is fresh, or set off to run dist/`);
    this.name = 'BundleSwitchError';
  }
}

/** Whether TXMESH_BUNDLE switches the bundle off; the same spellings as every other txmesh on/off variable. */
export function bundleSwitchedOff(env: NodeJS.ProcessEnv): boolean {
  const raw = env.TXMESH_BUNDLE;
  const value = raw?.trim().toLowerCase();
  if (value === undefined || value === '' || value === 'on' || value === '1' || value === 'true' || value === 'yes') return false;
  if (value === 'off' || value === '0' || value === 'false' || value === 'no') return true;
  throw new BundleSwitchError(raw!);
}

/**
 * The URL of `file` (e.g. "main.js") in the bundle when it is fresh and not switched off, else in dist/.
 * Throws BundleSwitchError for a TXMESH_BUNDLE that is neither on nor off, so a typo never runs the other build.
 */
export function entryPoint(packageRoot: URL, file: string, env: NodeJS.ProcessEnv = process.env): URL {
  const off = bundleSwitchedOff(env);
  return new URL(`${!off && bundleIsFresh(packageRoot) ? BUNDLE_DIR : 'dist/'}${file}`, packageRoot);
}

/** What a bin does with a BundleSwitchError: one line on stderr, its exit code; anything else is rethrown. */
export function reportBundleSwitchError(err: unknown, program: string): number {
  if (!(err instanceof BundleSwitchError)) throw err;
  process.stderr.write(`${program}: ${err.message}\n`);
  return err.exitCode;
}
