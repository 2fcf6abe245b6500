/**
 * A listener of its own for a server's probes (liveness, readiness): its own port, so its own accept queue
 * and backlog. Under overload the main port's queue fills with clients and a probe's connection waits there
 * (a dropped SYN is retried after 1, 3, 7 s); here it does not. Each probe is answered by the server's own
 * route through `inject`, so there is one implementation of what a probe says.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** The part of a fastify instance this needs (typed by shape: this package has no runtime dependency). */
export interface InjectableServer {
  inject(request: { method: 'GET' | 'HEAD'; url: string }): Promise<{ statusCode: number; headers: Record<string, unknown>; payload: string }>;
}

export interface ProbeListener {
  url: string;
  close(): Promise<void>;
}

export async function startProbeListener(server: InjectableServer, paths: readonly string[], host: string, port: number): Promise<ProbeListener> {
  const listener = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !paths.includes(path)) {
      res.writeHead(404, { 'content-type': 'application/json; charset=utf-8' }).end('{"error":{"code":"TXM_NOT_FOUND","message":"This port serves only the probes."}}');
      return;
    }
    server.inject({ method: req.method, url: path }).then(
      (answer) => {
        res.writeHead(answer.statusCode, { 'content-type': String(answer.headers['content-type'] ?? 'application/json; charset=utf-8') });
        res.end(req.method === 'HEAD' ? undefined : answer.payload);
      },
      () => res.writeHead(503).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(port, host, () => resolve());
  });
  const address = listener.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`,
    close: () => new Promise<void>((resolve) => listener.close(() => resolve())),
  };
}
