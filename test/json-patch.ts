/**
 * Applies an RFC 6902 JSON Patch the way the API server does for a mutating webhook, for the ops the
 * injector emits (add, with "-" for appending and an index for inserting); anything else throws, so a
 * patch the test cannot apply exactly fails the test instead of being half applied.
 */
function unescape(segment: string): string {
  return segment.replaceAll('~1', '/').replaceAll('~0', '~');
}

export interface PatchOp {
  op: string;
  path: string;
  value?: unknown;
}

export function applyJsonPatch<T>(document: T, patch: PatchOp[]): T {
  const result = structuredClone(document) as unknown;
  for (const { op, path, value } of patch) {
    if (op !== 'add') throw new Error(`unsupported JSON Patch op "${op}"`);
    const segments = path.split('/').slice(1).map(unescape);
    const last = segments.pop();
    if (last === undefined) throw new Error('cannot replace the whole document');
    let parent = result as Record<string, unknown> | unknown[];
    for (const segment of segments) {
      const next = Array.isArray(parent) ? parent[Number(segment)] : parent[segment];
      if (typeof next !== 'object' || next === null) throw new Error(`path ${path}: "${segment}" does not exist`);
      parent = next as Record<string, unknown> | unknown[];
    }
    if (Array.isArray(parent)) {
      const index = last === '-' ? parent.length : Number(last);
      if (!Number.isInteger(index) || index < 0 || index > parent.length) throw new Error(`path ${path}: index out of range`);
      parent.splice(index, 0, structuredClone(value));
    } else {
      parent[last] = structuredClone(value);
    }
  }
  return result as T;
}
