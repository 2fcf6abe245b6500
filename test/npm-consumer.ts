/**
 * A project outside the repository that installs txmesh the way a user would: from the tarballs `npm pack`
 * makes of the publishable packages, plus their registry dependencies. The tarballs stand in for the
 * registry: the consumer's `overrides` send every txmesh package, direct or transitive, to its tarball.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, type RunResult } from './processes.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface PackageJson {
  name: string;
  version?: string;
  private?: boolean;
  license?: string;
  engines?: { node?: string };
  bin?: Record<string, string>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  workspaces?: string[];
}

export interface PackedFile {
  path: string;
  mode: number;
}

export interface Packed {
  name: string;
  version: string;
  filename: string;
  files: PackedFile[];
}

export function readPackageJson(dir: string): PackageJson {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;
}

/** The workspaces that are not private: what the project publishes. */
export function publishableWorkspaces(): string[] {
  return (readPackageJson(REPO_ROOT).workspaces ?? []).filter((dir) => readPackageJson(join(REPO_ROOT, dir)).private !== true);
}

/** The version the repository installed, so the consumer asks for what npm's shared cache already holds. */
export function repoVersionOf(name: string): string {
  const version = readPackageJson(join(REPO_ROOT, 'node_modules', name)).version;
  if (version === undefined) throw new Error(`the repository has no version of ${name} installed`);
  return version;
}

/**
 * npm's environment without what `npm test` put there for the repository (its prefix, package and lifecycle),
 * so an npm started for the consumer works on the consumer's folder. Cache, registry and proxy settings stay.
 */
export function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    const lower = key.toLowerCase();
    if (lower === 'init_cwd' || lower === 'npm_config_local_prefix' || lower === 'npm_config_call') continue;
    if (lower.startsWith('npm_') && !lower.startsWith('npm_config_')) continue;
    if (lower.startsWith('npm_config_workspace')) continue;
    env[key] = value;
  }
  return env;
}

/** `npm pack` of every publishable workspace into `destination`, built beforehand (npm test builds). */
export async function packPublishable(destination: string, timeoutMs: number): Promise<Packed[]> {
  const workspaces = publishableWorkspaces().flatMap((dir) => ['--workspace', dir]);
  const { stdout } = await run('npm', ['pack', ...workspaces, '--pack-destination', destination, '--ignore-scripts', '--json'], {
    cwd: REPO_ROOT,
    env: npmEnv(),
    timeoutMs,
  });
  return JSON.parse(stdout) as Packed[];
}

export interface ConsumerProject {
  dir: string;
  name: string;
  /** txmesh packages the project names itself; the others arrive as their dependencies. */
  txmesh: string[];
  /** Registry packages with the version to ask for. */
  registry: Record<string, string>;
  devRegistry?: Record<string, string>;
}

/** Writes the consumer's package.json: its own txmesh packages and overrides, both pointing at the tarballs. */
export function writeConsumerPackage(project: ConsumerProject, packed: Packed[], tarballDir: string): void {
  const tarball = new Map(packed.map((p) => [p.name, `file:${relative(project.dir, join(tarballDir, p.filename))}`]));
  const spec = (name: string): string => {
    const found = tarball.get(name);
    if (found === undefined) throw new Error(`${name} was not packed`);
    return found;
  };
  const pkg = {
    name: project.name,
    private: true,
    type: 'module',
    dependencies: { ...Object.fromEntries(project.txmesh.map((name) => [name, spec(name)])), ...project.registry },
    devDependencies: project.devRegistry ?? {},
    // Direct or transitive, every txmesh package comes from its tarball; the registry is never asked for one.
    overrides: Object.fromEntries(packed.map((p) => [p.name, spec(p.name)])),
    allowScripts: { 'better-sqlite3': true },
  };
  writeFileSync(join(project.dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
}

/** `npm install` in the consumer, from npm's shared cache where it can (--prefer-offline). */
export function npmInstall(dir: string, extraArgs: string[], timeoutMs: number): Promise<RunResult> {
  return run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...extraArgs], { cwd: dir, env: npmEnv(), timeoutMs });
}

export interface InstalledPackage {
  /** Where it sits, e.g. node_modules/@txmesh/protocol or node_modules/txmesh/node_modules/@txmesh/protocol. */
  location: string;
  name: string;
  resolved: string | undefined;
}

/** Every copy of the named packages in the installed tree, with where npm took it from. */
export function installedCopies(dir: string, names: Set<string>): InstalledPackage[] {
  const lock = JSON.parse(readFileSync(join(dir, 'node_modules', '.package-lock.json'), 'utf8')) as {
    packages: Record<string, { name?: string; resolved?: string }>;
  };
  return Object.entries(lock.packages)
    .map(([location, entry]) => ({ location, name: entry.name ?? location.slice(location.lastIndexOf('node_modules/') + 'node_modules/'.length), resolved: entry.resolved }))
    .filter((copy) => names.has(copy.name));
}
