/**
 * `txmesh injector`: the mutating admission webhook as an HTTPS fastify server. POST /mutate answers
 * AdmissionReviews; GET /healthz is its probe. The certificate files are read again when they change
 * (cert-manager renews them in place), so a renewal needs no restart.
 */
import { readFileSync, statSync } from 'node:fs';
import type { Server } from 'node:https';
import Fastify, { type FastifyInstance } from 'fastify';
import { NO_SCHEMA_COMPILERS, installTxmeshErrorHandlers, serverLoggerOptions } from '@txmesh/protocol';
import { reviewAdmission } from './admission-review.ts';
import type { SidecarTemplate } from './sidecar-template.ts';

export const InjectorPaths = { MUTATE: '/mutate', HEALTH: '/healthz' } as const;

/** AdmissionReviews carry the whole pod; 4 MiB is well above the API server's own object limit (about 1.5 MiB). */
const BODY_LIMIT = 4 * 1024 * 1024;

export interface InjectorTls {
  certFile: string;
  keyFile: string;
}

export interface InjectorOptions {
  template: SidecarTemplate;
  /** Without it the app serves plain HTTP: only for app.inject() in tests; the command always passes TLS. */
  tls?: InjectorTls;
  host?: string;
  port?: number;
  logLevel?: string;
  /** How often the certificate files are checked for a renewal. */
  tlsReloadMs?: number;
}

function readTls(tls: InjectorTls): { cert: Buffer; key: Buffer } {
  return { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
}

export function buildInjector(opts: InjectorOptions): FastifyInstance {
  const common = { logger: serverLoggerOptions('injector', opts.logLevel), bodyLimit: BODY_LIMIT, schemaController: NO_SCHEMA_COMPILERS };
  // Routes and hooks are the same either way; only the server type differs, which nothing here depends on.
  const app = (opts.tls ? Fastify({ ...common, https: readTls(opts.tls) }) : Fastify(common)) as unknown as FastifyInstance;
  app.removeContentTypeParser('text/plain');
  installTxmeshErrorHandlers(app);
  app.post(InjectorPaths.MUTATE, async (request) => {
    const answer = reviewAdmission(request.body, opts.template);
    if (answer.response.patch !== undefined) request.log.info({ uid: answer.response.uid }, 'sidecar injected');
    if (!answer.response.allowed) request.log.warn({ uid: answer.response.uid, status: answer.response.status }, 'pod refused');
    return answer;
  });
  app.get(InjectorPaths.HEALTH, async () => ({ ok: true }));
  return app;
}

/** Re-reads the certificate pair whenever either file's modification time changes. */
function watchCertificates(app: FastifyInstance, tls: InjectorTls, everyMs: number): () => void {
  const stamp = (): string => `${statSync(tls.certFile).mtimeMs}/${statSync(tls.keyFile).mtimeMs}`;
  let seen = stamp();
  const timer = setInterval(() => {
    try {
      const now = stamp();
      if (now === seen) return;
      (app.server as unknown as Server).setSecureContext(readTls(tls));
      seen = now;
      app.log.info('reloaded the TLS certificate');
    } catch (err) {
      app.log.warn({ err }, 'could not reload the TLS certificate; keeping the current one');
    }
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

export async function startInjector(opts: InjectorOptions & { tls: InjectorTls }): Promise<{ url: string; close(): Promise<void> }> {
  const app = buildInjector(opts);
  await app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 8443 });
  const stopWatching = watchCertificates(app, opts.tls, opts.tlsReloadMs ?? 30_000);
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : opts.port;
  const host = opts.host ?? '127.0.0.1';
  const url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  app.log.info({ url }, 'injector ready');
  return {
    url,
    close: async () => {
      stopWatching();
      await app.close();
    },
  };
}
