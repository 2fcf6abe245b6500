/** One JSON request over a keep-alive undici Pool, bounded in time. */
import type { Pool } from 'undici';

export interface JsonAnswer {
  status: number;
  body: unknown;
}

export async function requestJson(pool: Pool, method: 'GET' | 'POST', path: string, body: unknown, timeoutMs: number): Promise<JsonAnswer> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const answer = await pool.request({
    method,
    path,
    headers,
    body: body === undefined ? null : JSON.stringify(body),
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const text = await answer.body.text();
  let parsed: unknown;
  try {
    parsed = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: answer.statusCode, body: parsed };
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The txmesh error code in an error body, when there is one. */
export function errorCodeOf(body: unknown): string | undefined {
  if (!isPlainObject(body) || !isPlainObject(body.error)) return undefined;
  return typeof body.error.code === 'string' ? body.error.code : undefined;
}
