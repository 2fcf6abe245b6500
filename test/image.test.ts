/**
 * The container image, checked without a Docker daemon (none exists on our machines): the Dockerfile's
 * stages are parsed and held to what the image promises, and the runtime stage's production install
 * (scripts/image/install-production.mjs, the very script the Dockerfile runs) is run into a temp dir, which
 * must hold no dev dependency and must run `txmesh` as a non-root user.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { awaitReady } from 'txmesh';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NON_ROOT = 10001;

interface Stage {
  name: string;
  from: string;
  instructions: { op: string; args: string }[];
}

/** Dockerfile stages with their instructions (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const lines = text.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const [op, ...rest] = line.split(/\s+/);
    const argText = rest.join(' ');
    if (op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(argText);
      assert.ok(m, `FROM line: ${line}`);
      stages.push({ name: m[2] ?? `stage-${stages.length}`, from: m[1]!, instructions: [] });
    } else if (op === 'ARG' && stages.length === 0) {
      const [name, value = ''] = argText.split('=');
      args.set(name!, value);
    } else {
      assert.ok(stages.length > 0, `${op} before the first FROM`);
      stages.at(-1)!.instructions.push({ op: op!, args: argText });
    }
  }
  return { args, stages };
}

/** The workspaces a package needs at run time: itself and its workspace dependencies, transitively. */
function runtimeWorkspaces(start: string): string[] {
  const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };
  const byName = new Map(root.workspaces.map((w) => [JSON.parse(readFileSync(join(ROOT, w, 'package.json'), 'utf8')).name as string, w]));
  const seen = new Set<string>();
  const visit = (w: string): void => {
    if (seen.has(w)) return;
    seen.add(w);
    const deps = Object.keys(JSON.parse(readFileSync(join(ROOT, w, 'package.json'), 'utf8')).dependencies ?? {});
    for (const dep of deps) if (byName.has(dep)) visit(byName.get(dep)!);
  };
  visit(start);
  return [...seen].sort();
}

function installArgs(stage: Stage): string[] {
  const run = stage.instructions.find((i) => i.op === 'RUN' && i.args.includes('install-production.mjs'));
  assert.ok(run, `${stage.name} runs install-production.mjs`);
  return run.args.split(/\s+/).slice(4); // node scripts/image/install-production.mjs /src /opt/txmesh <workspaces>
}

const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const stage = (name: string): Stage => {
  const found = dockerfile.stages.find((s) => s.name === name);
  assert.ok(found, `stage ${name}`);
  return found;
};

describe('container image', () => {
  it('Dockerfile: a builder that runs npm ci, then a slim Node 20 runtime as a non-root uid with ENTRYPOINT ["txmesh"]', () => {
    const build = dockerfile.stages[0]!;
    assert.ok(build.instructions.some((i) => i.op === 'RUN' && /^npm ci\b/.test(i.args)), 'the builder installs from the lockfile');
    const runtime = dockerfile.stages.at(-1)!;
    assert.equal(runtime.name, 'runtime', 'the default target is the operator image');
    for (const name of ['runtime', 'lab']) {
      const s = stage(name);
      const base = stage(s.from);
      const image = base.from.replace(/^\$\{(\w+)\}$/, (_, arg: string) => dockerfile.args.get(arg) ?? '');
      assert.match(image, /^node:20[\w.-]*-slim$/, `${name} runs on a slim Node 20`);
      assert.ok(!base.instructions.some((i) => i.op === 'RUN' && /\bnpm\b/.test(i.args)) && !s.instructions.some((i) => i.op === 'RUN' && /\bnpm\b/.test(i.args)), `${name}: no npm install in the runtime stages`);
      const user = s.instructions.filter((i) => i.op === 'USER').at(-1);
      assert.equal(user?.args, `${NON_ROOT}:${NON_ROOT}`, `${name}: a numeric non-root user (Kubernetes can verify runAsNonRoot)`);
      assert.deepEqual(JSON.parse(s.instructions.find((i) => i.op === 'ENTRYPOINT')!.args), ['txmesh']);
      const copies = s.instructions.filter((i) => i.op === 'COPY');
      assert.ok(copies.length > 0 && copies.every((c) => /^--from=\S+-files\s/.test(c.args)), `${name} takes only the production install`);
    }
    // The operator image carries the command and what it depends on, not the lab or the example.
    assert.deepEqual(installArgs(stage('operator-files')).sort(), runtimeWorkspaces('packages/cli'));
    assert.deepEqual(installArgs(stage('lab-files')).sort(), runtimeWorkspaces('packages/lab'));
  });

  it('every workspace an image installs ships what its manifest points at (main, exports, bin)', () => {
    const workspaces = [...new Set([...installArgs(stage('operator-files')), ...installArgs(stage('lab-files'))])];
    // What install-production.mjs copies: the files `npm pack` would put in each workspace's tarball.
    const pack = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', ...workspaces.map((w) => `--workspace=${w}`)], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(pack.status, 0, pack.stderr);
    const packed = JSON.parse(pack.stdout) as { name: string; files: { path: string }[] }[];
    assert.equal(packed.length, workspaces.length);
    for (const w of workspaces) {
      const manifest = JSON.parse(readFileSync(join(ROOT, w, 'package.json'), 'utf8')) as { name: string; main?: string; exports?: unknown; bin?: Record<string, string> };
      const files = new Set(packed.find((p) => p.name === manifest.name)!.files.map((f) => f.path));
      const targets = new Set<string>();
      const collect = (value: unknown): void => {
        if (typeof value === 'string') targets.add(value.replace(/^\.\//, ''));
        else if (value !== null && typeof value === 'object') Object.values(value).forEach(collect);
      };
      collect([manifest.main, manifest.exports, manifest.bin]);
      assert.ok(targets.size > 0, `${w} names its entry points`);
      assert.deepEqual([...targets].filter((target) => !files.has(target)), [], `${w}: entry points missing from what the image copies`);
    }
  });

  it('.dockerignore keeps build output and installed modules out of the context', () => {
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const pattern of ['**/node_modules', '**/dist', '.git', '.tools']) assert.ok(ignored.includes(pattern), pattern);
    for (const copy of stage('build').instructions.filter((i) => i.op === 'COPY')) {
      for (const path of copy.args.split(/\s+/).slice(0, -1)) assert.ok(existsSync(join(ROOT, path)), `COPY ${path} exists`);
    }
  });

  it('the runtime install: production dependencies only, no lab, and `txmesh` runs from it as a non-root user', async (t) => {
    const target = mkdtempSync(join(tmpdir(), 'txmesh-image-'));
    t.after(() => rmSync(target, { recursive: true, force: true }));
    chmodSync(target, 0o755);
    const workspaces = installArgs(stage('operator-files'));
    const install = spawnSync(process.execPath, [join(ROOT, 'scripts/image/install-production.mjs'), ROOT, target, ...workspaces], { encoding: 'utf8', timeout: 5 * 60_000 });
    assert.equal(install.status, 0, install.stderr);

    // The lockfile marks every package only dev dependencies need ("dev": true): none may be installed.
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages).filter(([path, p]) => p.dev === true && path.startsWith('node_modules/'));
    assert.ok(devOnly.length > 0, 'the lockfile has dev-only packages to look for');
    const present = devOnly.map(([path]) => path).filter((path) => existsSync(join(target, path)));
    assert.deepEqual(present, [], 'no dev dependency in the runtime install');
    for (const absent of ['node_modules/typescript', 'node_modules/@txmesh/lab', 'node_modules/@txmesh/example-ecommerce', 'packages/lab', 'examples']) {
      assert.ok(!existsSync(join(target, absent)), `${absent} is not in the operator image`);
    }
    const shipped = readdirSync(join(target, 'packages'), { recursive: true }) as string[];
    assert.deepEqual(shipped.filter((f) => /\.test\.|\.tsbuildinfo$/.test(f)), [], 'no tests or build info');

    const bin = join(target, 'packages/cli/bin/txmesh.mjs');
    const asUser = process.getuid?.() === 0 ? { uid: NON_ROOT, gid: NON_ROOT } : {};
    const help = spawnSync(process.execPath, [bin, 'help'], { encoding: 'utf8', ...asUser });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /injector/);

    // A coordinator shard runs from it (the compiled better-sqlite3 addon included), as uid 10001 on a data dir of its own.
    const data = join(target, 'data');
    spawnSync('mkdir', ['-p', data]);
    if (asUser.uid !== undefined) spawnSync('chown', [`${NON_ROOT}:${NON_ROOT}`, data]);
    const child = spawn(process.execPath, [bin, 'coordinator', '--port', '0', '--metrics-port', '0', '--data', data, '--insecure'], { stdio: ['ignore', 'pipe', 'pipe'], ...asUser });
    t.after(() => child.kill('SIGKILL'));
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const url = await awaitReady(child).catch((err: Error) => assert.fail(`${err.message}: ${stderr}`));
    const health = (await (await fetch(`${url}/v1/health`)).json()) as { ok: boolean };
    assert.equal(health.ok, true);
    assert.ok(existsSync(join(data, 'coordinator-shard-0.db')), 'the decision log is in the data dir');
  });
});
