/**
 * Which build a process entry point runs: its package's bundle (bundle/, written by `npm run build`: each
 * role's modules and the third-party code it loads before ready in a few ESM files, which a role loads in about
 * half the CPU time of dist/'s 300-odd module files) or the per-file compiled output in dist/.
 *
 * The bundle is built from dist/. It runs only while it is as new as the compile it was built from: each
 * package's dist/.tsbuildinfo is recorded in bundle/built-from.json, and a `tsc -b` since (which rewrites them)
 * sends the process back to dist/ until the next `npm run build` (or test run) bundles again. An installed
 * package has no .tsbuildinfo and runs its bundle. TXMESH_BUNDLE=off runs dist/ always (to compare the two).
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

/** The URL of `file` (e.g. "main.js") in the bundle when it is fresh and not switched off, else in dist/. */
export function entryPoint(packageRoot: URL, file: string, env: NodeJS.ProcessEnv = process.env): URL {
  const off = env.TXMESH_BUNDLE?.trim().toLowerCase() === 'off';
  return new URL(`${!off && bundleIsFresh(packageRoot) ? BUNDLE_DIR : 'dist/'}${file}`, packageRoot);
}
