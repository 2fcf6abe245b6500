/**
 * Programs some tests need that are not npm dependencies (PostgreSQL, promtool, Chromium, helm): each has an
 * idempotent installer in scripts/test-tools/<tool>.sh that prints the program's path on its last line.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SCRIPTS = fileURLToPath(new URL('../../scripts/test-tools/', import.meta.url));
const found = new Map<string, string>();

/** Installs the tool if it is missing (apt-get or npm) and returns the path its script printed. */
export function ensureTestTool(tool: string): string {
  const known = found.get(tool);
  if (known !== undefined) return known;
  const out = execFileSync('bash', [`${SCRIPTS}${tool}.sh`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 15 * 60_000 });
  const path = out.trim().split('\n').pop()?.trim() ?? '';
  if (path === '') throw new Error(`scripts/test-tools/${tool}.sh printed no path`);
  found.set(tool, path);
  return path;
}
