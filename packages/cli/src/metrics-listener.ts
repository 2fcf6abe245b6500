/**
 * The small HTTP server of GET /metrics, apart from the SDK: it is bound before a role prints its ready line
 * (so a taken port still fails the start, and TXMESH_METRICS names the port at once), while the SDK that
 * answers may load after it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SILENT_CONNECTION_GRACE_MS, TxmeshError } from '@txmesh/protocol';
import { UsageError } from './args.ts';
import type { TelemetryOptions } from './telemetry-options.ts';

export type MetricsHandler = (request: IncomingMessage, response: ServerResponse) => void;

/**
 * GET /metrics on the asked port. The default port taken (several txmesh processes on one host, as in the
 * README's tour) falls back to a free one, said on stderr and in the TXMESH_METRICS line; a port given with
 * --metrics-port must be free.
 */
export async function listenMetrics(handler: MetricsHandler, options: TelemetryOptions): Promise<Server> {
  const { metricsHost: host, metricsPort: port } = options;
  try {
    return await listenMetricsOn(handler, host, port);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    if (options.metricsPortGiven) throw new UsageError(`--metrics-port ${port} is in use on ${host}: pick another port, or 0 for any free one`);
    const server = await listenMetricsOn(handler, host, 0);
    process.stderr.write(`txmesh: the default metrics port ${port} is in use on ${host}; /metrics is on port ${(server.address() as AddressInfo).port} (choose one with --metrics-port)\n`);
    return server;
  }
}

export function metricsUrlOf(server: Server, options: TelemetryOptions): string {
  return `http://${options.metricsHost}:${(server.address() as AddressInfo).port}/metrics`;
}

/**
 * Closes the metrics port. A scrape still running after SILENT_CONNECTION_GRACE_MS, or a connection that never
 * sent a request (which `server.close` would wait for without bound), is cut: a scraper retries on its next beat.
 */
export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    const cut = setTimeout(() => server.closeAllConnections(), SILENT_CONNECTION_GRACE_MS);
    server.close(() => {
      clearTimeout(cut);
      resolve();
    });
  });
}

function listenMetricsOn(handler: MetricsHandler, host: string, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method === 'GET' && path === '/metrics') {
      handler(request, response);
      return;
    }
    // A refusal in the catalogue's shape, like every other txmesh listener's.
    const error = new TxmeshError('TXM_NOT_FOUND', `this port serves only GET /metrics, not ${request.method ?? '?'} ${path}`);
    response.writeHead(error.status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(error.toBody()));
  });
  // Scrapes come and go: an idle keep-alive connection must not hold the process open at shutdown.
  server.keepAliveTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
