#!/usr/bin/env node
// Bundles the process entry points after `tsc -b` (`npm run build` and scripts/run-tests.mjs call it; alone:
// `node scripts/bundle.mjs [--if-stale]`). A role loading dist/ reads 300-odd module files before it is ready
// (fastify and semver, the OpenTelemetry api, pino: CommonJS files resolved, read and wrapped one by one); its
// bundle is a few ESM files with the same code, the packages' own source maps carried through.
//
// - packages/cli/bundle: the `txmesh` bin (coordinator, sidecar, client commands, injector), one chunk per
//   dynamic import so each role still loads only its own code.
// - packages/lab/bundle: the lab's member processes (example service, bank, null echo, null sidecar); the lab's
//   harness commands keep running dist/ (their workers and preloads are addressed as files next to dist/).
//
// Left external (loaded from node_modules as before): native addons, what loads only after ready or on request
// (the OpenTelemetry SDK, undici, pg) and the optional lab. bundle/built-from.json records the build-info files
// of the packages bundled, so the bins fall back to dist/ after a later `tsc -b` (packages/cli/src/bundle-entry.ts).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const EXTERNAL = [
  'better-sqlite3',
  'pg',
  'undici',
  '@opentelemetry/sdk-*',
  '@opentelemetry/exporter-*',
  '@opentelemetry/core',
  '@opentelemetry/resources',
  '@opentelemetry/otlp-*',
  '@txmesh/lab',
  '@txmesh/lab/*',
  // What fastify requires only when it builds a schema compiler (every txmesh server passes protocol's
  // NO_SCHEMA_COMPILERS) or injects a request (tests, against dist/): ajv, fast-json-stringify and
  // light-my-request, half of the fastify chunk's 1.4 MB, which each role compiled at start for nothing.
  '@fastify/ajv-compiler',
  '@fastify/fast-json-stringify-compiler',
  'light-my-request',
];
// A worker the protocol package starts from a file next to the module that starts it (probe-listener.ts).
const PROBE_WORKER = 'packages/protocol/dist/probe-worker.js';

export const BUNDLES = [
  { packageDir: 'packages/cli', entryPoints: { main: 'packages/cli/dist/main.js', 'probe-worker': PROBE_WORKER } },
  { packageDir: 'packages/lab', entryPoints: { main: 'packages/lab/dist/main.js', 'probe-worker': PROBE_WORKER } },
];

// Modules fastify requires at load but uses only on paths txmesh servers never take: in the bundles each is a
// stand-in that loads the real module on its first property read (bundle-shims/lazy-module.cjs). Paths are
// fastify's files; every other importer of these modules gets them as they are.
const LAZY_IN_FASTIFY = {
  // Used only with `http2: true`; loading it sets up nghttp2's binding, about 15 ms of a coordinator's start.
  'lib/server.js': ['node:http2'],
  // Used only for a plugin that declares the fastify versions it supports; semver's index builds every range
  // and comparator at load, compiling its largest regular expressions: about 40 ms.
  'lib/plugin-utils.js': ['semver'],
};
const LAZY_MODULE = join(root, 'scripts', 'bundle-shims', 'lazy-module.cjs');
const FASTIFY_DIR = `${sep}node_modules${sep}fastify${sep}`;
const lazyInFastify = {
  name: 'lazy-in-fastify',
  setup(build) {
    const specifiers = new Set(Object.values(LAZY_IN_FASTIFY).flat());
    build.onResolve({ filter: /^(node:http2|semver)$/ }, (args) => {
      const at = args.importer.lastIndexOf(FASTIFY_DIR);
      const file = at < 0 ? undefined : args.importer.slice(at + FASTIFY_DIR.length).split(sep).join('/');
      if (!specifiers.has(args.path) || file === undefined || !LAZY_IN_FASTIFY[file]?.includes(args.path)) return undefined;
      return { path: args.path, namespace: 'lazy', pluginData: { resolveDir: dirname(args.importer) } };
    });
    build.onLoad({ filter: /.*/, namespace: 'lazy' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(LAZY_MODULE)})(() => require(${JSON.stringify(args.path)}));`,
      loader: 'js',
      resolveDir: args.pluginData.resolveDir,
    }));
  },
};

const packageOfInput = (input) => /^(?:packages|examples)\/[^/]+/.exec(input)?.[0];
const nodeModuleOfInput = (input) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)?.[1];

/** The package's dist/.tsbuildinfo of every txmesh package the bundle took code from, with its mtime now. */
function builtFrom(bundleDir, inputs) {
  const out = {};
  for (const dir of new Set(inputs.map(packageOfInput).filter(Boolean))) {
    const info = join(root, dir, 'dist', '.tsbuildinfo');
    if (existsSync(info)) out[relative(bundleDir, info).split(sep).join('/')] = statSync(info).mtimeMs;
  }
  return out;
}

/** Each third-party package bundled, with its version and licence text, as its licence asks for redistribution. */
function thirdPartyNotices(inputs) {
  const seen = new Map();
  for (const input of inputs) {
    const name = nodeModuleOfInput(input);
    if (name === undefined || seen.has(name)) continue;
    const dir = join(root, input.slice(0, input.indexOf(`node_modules/${name}/`)), 'node_modules', name);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const licenceFile = readdirSync(dir).find((f) => /^(licen[sc]e|copying)/i.test(f));
    seen.set(name, `${name}@${pkg.version} (${pkg.license ?? 'see below'})\n\n${licenceFile ? readFileSync(join(dir, licenceFile), 'utf8').trim() : '(no licence file shipped)'}\n`);
  }
  const header = 'Third-party code bundled into the files of this folder, with its licence.\n';
  return [header, ...[...seen.keys()].sort().map((name) => seen.get(name))].join(`\n${'-'.repeat(72)}\n\n`);
}

/** Bundles one entry point set into <packageDir>/bundle (replacing what was there). */
async function bundleOne(esbuild, { packageDir, entryPoints }) {
  const outdir = join(root, packageDir, 'bundle');
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: Object.fromEntries(Object.entries(entryPoints).map(([name, file]) => [name, join(root, file)])),
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: EXTERNAL,
    plugins: [lazyInFastify],
    sourcemap: true,
    sourcesContent: false,
    legalComments: 'none', // every bundled package's licence is in THIRD-PARTY-NOTICES.txt
    metafile: true,
    logLevel: 'warning',
    // CommonJS dependencies call require() for Node's built-ins, which ESM output does not have.
    banner: { js: "import { createRequire as __txmeshCreateRequire } from 'node:module'; const require = __txmeshCreateRequire(import.meta.url);" },
  });
  const inputs = Object.keys(result.metafile.inputs);
  writeFileSync(join(outdir, 'THIRD-PARTY-NOTICES.txt'), thirdPartyNotices(inputs));
  writeFileSync(join(outdir, 'built-from.json'), `${JSON.stringify({ inputs: builtFrom(outdir, inputs) }, null, 2)}\n`);
  return Object.keys(result.metafile.outputs).filter((f) => f.endsWith('.js')).length;
}

/** Bundles every entry point set (only the stale ones with `ifStale`). Without esbuild installed it says so and leaves dist/ to run. */
export async function bundleAll({ ifStale = false, log = (line) => process.stderr.write(`${line}\n`) } = {}) {
  const { bundleIsFresh } = await import(pathToFileURL(join(root, 'packages/cli/dist/bundle-entry.js')).href);
  const todo = BUNDLES.filter((b) => !ifStale || !bundleIsFresh(pathToFileURL(join(root, b.packageDir, '/'))));
  if (todo.length === 0) return true;
  let esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    log('bundle: esbuild is not installed (run npm install): the bins run dist/, unbundled');
    return false;
  }
  for (const bundle of todo) {
    const files = await bundleOne(esbuild, bundle);
    log(`bundle: ${bundle.packageDir}/bundle (${files} files)`);
  }
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await bundleAll({ ifStale: process.argv.includes('--if-stale') });
}
