/**
 * What an installed package's shipped files import, checked against what its package.json declares. Hoisting
 * hides an undeclared dependency in the repository and in most consumers, until a user's tree differs.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { readPackageJson } from './npm-consumer.ts';

const BUILTINS = new Set(builtinModules);

/** Files of an installed package, without its own node_modules. */
function shippedFiles(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) shippedFiles(path, out);
    else out.push(path);
  }
  return out;
}

/**
 * Module specifiers of static imports, re-exports and dynamic imports with a literal, outside comment lines: a
 * bundle carries its dependencies' JSDoc, e.g. fastify's `@param {import('../fastify').FastifyInstance}`.
 */
function specifiers(source: string): string[] {
  const code = source.split('\n').filter((line) => !/^\s*(\*|\/\*|\/\/)/.test(line)).join('\n');
  return [...code.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"\s]+)['"]/g)].map((m) => m[1] ?? '');
}

/** '@scope/name/sub' -> '@scope/name', 'name/sub' -> 'name'. */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return (specifier.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)).join('/');
}

/** Whether a package in the consumer's tree carries its own type declarations. */
function shipsTypes(consumerDir: string, name: string): boolean {
  const dir = join(consumerDir, 'node_modules', name);
  if (!existsSync(dir)) return false;
  const pkg = readPackageJson(dir) as { types?: string; typings?: string; exports?: unknown };
  return pkg.types !== undefined || pkg.typings !== undefined || JSON.stringify(pkg.exports ?? {}).includes('"types"') || existsSync(join(dir, 'index.d.ts'));
}

/**
 * Problems with one installed package: a relative import of a file the tarball lacks, a bare import of a
 * package it does not declare (dependency or peer), or a .d.ts import of a package without types whose
 * @types package it does not declare.
 */
export function importProblems(consumerDir: string, name: string): string[] {
  const dir = join(consumerDir, 'node_modules', name);
  const pkg = readPackageJson(dir);
  const declared = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]);
  const problems: string[] = [];
  for (const file of shippedFiles(dir)) {
    const isTypes = file.endsWith('.d.ts');
    if (!isTypes && !/\.m?js$/.test(file)) continue;
    const where = `${name}/${relative(dir, file)}`;
    for (const specifier of specifiers(readFileSync(file, 'utf8'))) {
      if (specifier.startsWith('.')) {
        // A declaration's import of ./x.ts or ./x.js is served by ./x.d.ts.
        const target = isTypes ? specifier.replace(/\.[mc]?[jt]s$/, '.d.ts') : specifier;
        if (!existsSync(join(dirname(file), target))) problems.push(`${where} imports ${specifier}, which the tarball does not carry`);
        continue;
      }
      if (specifier.startsWith('node:') || BUILTINS.has(specifier)) continue;
      const imported = packageOf(specifier);
      if (!declared.has(imported)) problems.push(`${where} imports ${imported}, which ${name} does not declare`);
      else if (isTypes && !shipsTypes(consumerDir, imported)) {
        const typesPackage = `@types/${imported.replace(/^@/, '').replace('/', '__')}`;
        if (!declared.has(typesPackage)) problems.push(`${where} uses the types of ${imported}, but ${name} does not declare ${typesPackage}`);
      }
    }
  }
  return problems;
}
