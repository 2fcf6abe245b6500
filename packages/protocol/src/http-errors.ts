/**
 * Maps whatever a server's request pipeline throws (our TxmeshError, fastify's body-parser errors,
 * anything else) to a TxmeshError, so every HTTP refusal has our code, status and sentence.
 */
import { TxmeshError } from './errors.ts';

export function toTxmeshError(err: unknown): TxmeshError {
  if (err instanceof TxmeshError) return err;
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : undefined;
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new TxmeshError('TXM_BODY_TOO_LARGE');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new TxmeshError('TXM_UNSUPPORTED_MEDIA_TYPE');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new TxmeshError('TXM_BAD_REQUEST', 'the body is empty');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_VALIDATION':
      return new TxmeshError('TXM_BAD_REQUEST', message);
  }
  if (err instanceof SyntaxError) return new TxmeshError('TXM_BAD_REQUEST', 'the body is not valid JSON');
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  if (status === 413) return new TxmeshError('TXM_BODY_TOO_LARGE');
  if (status === 415) return new TxmeshError('TXM_UNSUPPORTED_MEDIA_TYPE');
  if (status >= 400 && status < 500) return new TxmeshError('TXM_BAD_REQUEST', message);
  return new TxmeshError('TXM_INTERNAL');
}
