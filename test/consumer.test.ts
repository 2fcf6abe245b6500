/**
 * A consumer outside the repository. Every publishable package is packed with `npm pack` and installed from
 * those tarballs (plus their registry dependencies) into new projects in a temp folder:
 *
 * - a plain JavaScript project (.mjs, no TypeScript, no tsx; test/fixtures/consumer-js) with a participant
 *   service of its own, a box office on fastify and better-sqlite3, and a script that books seats with
 *   @txmesh/client, run against a coordinator and a sidecar started through its installed `txmesh` bin;
 * - a TypeScript project (test/fixtures/consumer-ts) typechecked with strict and noUncheckedIndexedAccess
 *   against the .d.ts files the packages ship.
 *
 * Time: the JavaScript project's `npm install` compiles better-sqlite3 from source, about 1.5 minutes on an idle
 * 2-core machine with npm's shared cache warm (--prefer-offline), several minutes on a saturated one; the rest of
 * the file takes about 30 s. Bounded: the install by JS_INSTALL_TIMEOUT_MS (10 min), the file by FILE_TIMEOUT_MS
 * (14 min; scripts/run-tests.mjs gives this file 15). The install durations are printed as a diagnostic.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { CallerRole, authorizationHeader } from '@txmesh/protocol';
import { eventually } from './helpers.ts';
import {
  REPO_ROOT,
  installedCopies,
  npmInstall,
  packPublishable,
  readPackageJson,
  repoVersionOf,
  writeConsumerPackage,
  type Packed,
} from './npm-consumer.ts';
import { run, startUntilReady, type Started } from './processes.ts';
import { importProblems } from './shipped-imports.ts';

const PACK_TIMEOUT_MS = 60_000;
const JS_INSTALL_TIMEOUT_MS = 10 * 60_000;
const TS_INSTALL_TIMEOUT_MS = 2 * 60_000;
const START_TIMEOUT_MS = 30_000;
const TYPECHECK_TIMEOUT_MS = 60_000;
const FIXTURES = join(REPO_ROOT, 'test', 'fixtures');
const FILE_TIMEOUT_MS = 14 * 60_000;
const TSC = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const esbuildInstalled = await import('esbuild').then(() => true, () => false);

describe('a consumer outside the repository', { timeout: FILE_TIMEOUT_MS }, () => {
  const root = mkdtempSync(join(tmpdir(), 'txmesh-consumer-'));
  const tarballs = join(root, 'tarballs');
  const jsDir = join(root, 'consumer-js');
  const tsDir = join(root, 'consumer-ts');
  let packed: Packed[] = [];
  let installMs = { js: 0, ts: 0 };

  before(
    async () => {
      for (const dir of [tarballs, jsDir, tsDir]) mkdirSync(dir);
      packed = await packPublishable(tarballs, PACK_TIMEOUT_MS);
      cpSync(join(FIXTURES, 'consumer-js'), jsDir, { recursive: true });
      cpSync(join(FIXTURES, 'consumer-ts'), tsDir, { recursive: true });
      writeConsumerPackage(
        { dir: jsDir, name: 'box-office', txmesh: ['@txmesh/participant-sdk', '@txmesh/client', 'txmesh'], registry: { fastify: repoVersionOf('fastify') } },
        packed,
        tarballs,
      );
      writeConsumerPackage(
        {
          dir: tsDir,
          name: 'wallet',
          txmesh: ['@txmesh/participant-sdk', '@txmesh/client', '@txmesh/coordinator', '@txmesh/sidecar'],
          registry: { fastify: repoVersionOf('fastify') },
          devRegistry: { '@types/node': repoVersionOf('@types/node') },
        },
        packed,
        tarballs,
      );
      // The TypeScript project is only typechecked, never run: --ignore-scripts skips its native build.
      const [js, ts] = await Promise.all([npmInstall(jsDir, [], JS_INSTALL_TIMEOUT_MS), npmInstall(tsDir, ['--ignore-scripts'], TS_INSTALL_TIMEOUT_MS)]);
      installMs = { js: js.durationMs, ts: ts.durationMs };
    },
    { timeout: PACK_TIMEOUT_MS + JS_INSTALL_TIMEOUT_MS + 30_000 },
  );
  after(() => rmSync(root, { recursive: true, force: true }));

  test('every publishable package packs compiled JavaScript, types, a README and publishable metadata, and no tests', (t) => {
    t.diagnostic(`npm install: JavaScript consumer ${(installMs.js / 1000).toFixed(1)} s, TypeScript consumer ${(installMs.ts / 1000).toFixed(1)} s`);
    const names = packed.map((p) => p.name).sort();
    assert.deepEqual(names, ['@txmesh/client', '@txmesh/coordinator', '@txmesh/participant-sdk', '@txmesh/protocol', '@txmesh/sidecar', 'txmesh']);
    for (const tarball of packed) {
      const paths = tarball.files.map((f) => f.path);
      const has = (path: string): boolean => paths.includes(path);
      assert.ok(has('dist/index.js') && has('dist/index.d.ts'), `${tarball.name}: dist/index.js and dist/index.d.ts`);
      assert.ok(has('README.md'), `${tarball.name}: README.md`);
      for (const js of paths.filter((p) => p.startsWith('dist/') && p.endsWith('.js'))) {
        assert.ok(has(js.replace(/\.js$/, '.d.ts')), `${tarball.name}: ${js} ships without its .d.ts`);
      }
      // The bin runs its bundle (scripts/bundle.mjs), which `npm run build` makes wherever esbuild is installed (as in CI).
      if (tarball.name === 'txmesh' && esbuildInstalled) {
        assert.ok(has('bundle/main.js') && has('bundle/probe-worker.js') && has('bundle/THIRD-PARTY-NOTICES.txt'), 'txmesh: its bundle, worker and notices');
      }
      const leaked = paths.filter((p) => /\.test\.|\.fixture\.|(^|\/)test-[^/]*$|(^|\/)testing\/|tsbuildinfo/.test(p));
      assert.deepEqual(leaked, [], `${tarball.name} carries test files`);

      const pkg = readPackageJson(join(jsDir, 'node_modules', tarball.name));
      assert.notEqual(pkg.private, true, `${tarball.name} is private`);
      assert.match(pkg.version ?? '', /^\d+\.\d+\.\d+/, `${tarball.name}: version`);
      assert.ok(pkg.license, `${tarball.name}: license`);
      assert.ok(pkg.engines?.node, `${tarball.name}: engines.node`);
      const runtime = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})];
      assert.deepEqual(runtime.filter((d) => d === 'tsx' || d === 'typescript' || d === 'ts-node'), [], `${tarball.name} needs TypeScript at run time`);
      for (const bin of Object.values(pkg.bin ?? {})) {
        const entry = tarball.files.find((f) => f.path === bin.replace(/^\.\//, ''));
        assert.ok(entry, `${tarball.name}: bin ${bin} is in the tarball`);
        assert.equal(entry.mode & 0o111, 0o111, `${tarball.name}: bin ${bin} is executable`);
      }
    }
  });

  test('npm took every txmesh package from the packed tarballs, never from the registry', () => {
    const names = new Set(packed.map((p) => p.name));
    for (const dir of [jsDir, tsDir]) {
      const copies = installedCopies(dir, names);
      assert.ok(copies.length > 0, `${dir}: no txmesh package installed`);
      for (const copy of copies) {
        assert.match(copy.resolved ?? '', /^file:.*\/tarballs\/.*\.tgz$/, `${dir}: ${copy.location} came from ${copy.resolved}`);
      }
    }
    // The JavaScript consumer named three of them; the other three arrived as their dependencies.
    assert.deepEqual(installedCopies(jsDir, names).map((c) => c.name).sort(), [...names].sort());
  });

  test('the shipped files import only what their package declares', () => {
    const problems = packed.flatMap((p) => importProblems(jsDir, p.name));
    assert.deepEqual(problems, []);
  });

  test('a plain JavaScript service on the installed SDK: one booking commits, a business refusal aborts another', { timeout: 120_000 }, async (t) => {
    const data = join(root, 'data');
    mkdirSync(data);
    const txmesh = join(jsDir, 'node_modules', '.bin', 'txmesh');
    const env = { ...process.env, TXMESH_LOG_LEVEL: 'warn' };
    const started: Started[] = [];
    t.after(async () => {
      for (const member of started.reverse()) await member.stop();
    });
    const start = async (command: string, args: string[], readyLine: RegExp, extraEnv: NodeJS.ProcessEnv = {}): Promise<Started> => {
      const member = await startUntilReady(command, args, { cwd: jsDir, env: { ...env, ...extraEnv }, timeoutMs: START_TIMEOUT_MS, readyLine });
      started.push(member);
      return member;
    };
    // The credentials as README's Install section issues them, with the installed command.
    const issue = async (args: string[], file: string): Promise<string> => {
      const issued = await run(txmesh, ['credentials', ...args], { cwd: jsDir, env, timeoutMs: 30_000 });
      const path = join(data, file);
      writeFileSync(path, issued.stdout, { mode: 0o600 });
      return path;
    };
    const secretFile = await issue(['secret'], 'cluster.secret');
    const keyFile = await issue(['service', 'box-office', '--secret-file', secretFile], 'box-office.key');
    const clientKeyFile = await issue(['client', 'box-office-web', '--secret-file', secretFile], 'box-office-web.key');
    const clientKey = readFileSync(clientKeyFile, 'utf8').trim();
    const asClient = { authorization: authorizationHeader(CallerRole.CLIENT, 'box-office-web', clientKey) };
    const asSidecar = { authorization: authorizationHeader(CallerRole.SIDECAR, 'box-office', readFileSync(keyFile, 'utf8').trim()) };

    const coordinator = await start(txmesh, ['coordinator', '--port', '0', '--data', data, '--secret-file', secretFile], /^TXMESH_READY (\S+)/);
    const dbPath = join(data, 'box-office.db');
    const service = await start(process.execPath, ['box-office.mjs'], /^box-office listening on (\S+)/, { PORT: '0', DB: dbPath, KEY_FILE: keyFile });
    const sidecar = await start(
      txmesh,
      ['sidecar', '--service', 'box-office', '--service-url', service.ready, '--coordinator', coordinator.ready, '--port', '0', '--data', data, '--key-file', keyFile],
      /^TXMESH_READY (\S+)/,
    );
    const registered = await eventually(async () => {
      const { services } = (await (await fetch(`${coordinator.ready}/v1/services`, { headers: asClient })).json()) as { services: { service: string }[] };
      return services.some((s) => s.service === 'box-office');
    }, 10_000);
    assert.ok(registered, `the sidecar did not register box-office\n${sidecar.output()}`);

    const booked = await run(process.execPath, ['book-seats.mjs'], { cwd: jsDir, env: { ...env, COORDINATOR: coordinator.ready, CLIENT_KEY_FILE: clientKeyFile }, timeoutMs: 30_000 });
    const { first, second } = JSON.parse(booked.stdout.trim().split('\n').pop() ?? '') as {
      first: { txId: string; outcome: string };
      second: { txId: string; outcome: string; reason?: string };
    };
    assert.equal(first.outcome, 'committed', booked.stdout);
    assert.equal(second.outcome, 'aborted', booked.stdout);
    assert.equal(second.reason, 'SEAT_TAKEN');

    // The commit reaches the service after the client heard "committed": wait until nothing is prepared.
    const settled = await eventually(async () => {
      const { prepared } = (await (await fetch(`${service.ready}/txmesh/participant/v1/prepared`, { headers: asSidecar })).json()) as { prepared: unknown[] };
      return prepared.length === 0;
    }, 10_000);
    assert.ok(settled, 'a branch stayed prepared at the service');
    assert.ok(await sidecar.stop(), 'the sidecar did not stop on SIGTERM');
    assert.ok(await service.stop(), `the box office did not stop on SIGTERM\n${service.output()}`);

    const db = new Database(dbPath, { readonly: true });
    t.after(() => db.close());
    assert.deepEqual(db.prepare('SELECT seat, holder, booked FROM seats ORDER BY seat').all(), [{ seat: 'A1', holder: 'alice', booked: 1 }]);
    const branch = db.prepare('SELECT state, reason FROM txm_branches WHERE tx_id = ?');
    assert.deepEqual(branch.get(first.txId), { state: 'committed', reason: null });
    assert.deepEqual(branch.get(second.txId), { state: 'voted_no', reason: 'SEAT_TAKEN' });
    assert.deepEqual(db.prepare("SELECT tx_id FROM txm_branches WHERE state = 'prepared'").all(), [], 'branches left prepared');
    assert.deepEqual(db.prepare('SELECT key FROM txm_key_locks').all(), [], 'locks left behind');
  });

  test('a TypeScript consumer typechecks with strict against the shipped .d.ts', { timeout: TYPECHECK_TIMEOUT_MS + 5_000 }, async () => {
    // typescript is the repository's devDependency; the consumer has only the tarballs, fastify and @types/node.
    await run(process.execPath, [TSC, '-p', tsDir], { cwd: tsDir, timeoutMs: TYPECHECK_TIMEOUT_MS });
  });
});

test("README's Install section shows the JavaScript consumer's files as the test runs them", () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  for (const file of ['box-office.mjs', 'book-seats.mjs']) {
    assert.ok(blocks.includes(readFileSync(join(FIXTURES, 'consumer-js', file), 'utf8')), `README.md has no js block equal to ${file}`);
  }
});
