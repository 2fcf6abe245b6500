/**
 * Proxies the service's ordinary traffic. Headers go through untouched (x-txmesh-tx, traceparent, Host),
 * bodies are streamed, never parsed. Each request is timed for the resource report.
 */
import http from 'node:http';
import https from 'node:https';
import httpProxy from 'http-proxy';
import { TxmeshError } from '@txmesh/protocol';
import type { Logger } from 'pino';
import type { ResourceMonitor } from './resource-monitor.ts';
import type { SidecarMetrics } from './sidecar-metrics.ts';

export interface ServiceProxy {
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
  /** From now on every answer closes its connection, so a closing server is not held open by keep-alive clients. */
  drain(): void;
  close(): void;
}

export function createServiceProxy(serviceUrl: string, monitor: ResourceMonitor, log: Logger, timeoutMs = 60_000, metrics?: SidecarMetrics): ServiceProxy {
  const agent = new URL(serviceUrl).protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  // Without proxyTimeout a hung service, or a link that lost its answers, holds the caller's request forever.
  const proxy = httpProxy.createProxyServer({ target: serviceUrl, agent, xfwd: false, changeOrigin: false, proxyTimeout: timeoutMs });
  // http-proxy's deleteLength pass forces content-length 0 on a DELETE/OPTIONS without one and drops its
  // transfer-encoding: a chunked body would then reach the service as a second, garbage request.
  const passes = proxy as unknown as { webPasses: { name: string }[] };
  passes.webPasses = passes.webPasses.filter((pass) => pass.name !== 'deleteLength');
  let draining = false;

  proxy.on('proxyRes', (proxyRes, _req, res) => {
    if (draining) proxyRes.headers.connection = 'close';
    // The service broke off its answer: without this the client would wait for the rest forever.
    proxyRes.once('close', () => {
      if (!proxyRes.complete) res.destroy();
    });
    proxyRes.on('error', () => res.destroy());
  });

  function fail(err: Error, res: http.ServerResponse): void {
    if (res.headersSent || res.destroyed) {
      // Part of the service's answer already left: cutting the connection is the only honest signal.
      res.destroy();
      return;
    }
    log.warn({ err: err.message }, 'proxying to the service failed');
    // http-proxy reports its own time-out as a reset (ECONNRESET) of the request it aborted.
    const code = (err as NodeJS.ErrnoException).code ?? err.message;
    const body = JSON.stringify(new TxmeshError('TXM_SERVICE_UNREACHABLE', `${code} (proxy time-out ${timeoutMs} ms)`).toBody());
    res.writeHead(502, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  return {
    handle(req, res) {
      res.once('close', monitor.requestStarted());
      if (metrics) res.once('close', metrics.proxyStarted());
      proxy.web(req, res, {}, (err) => fail(err, res as http.ServerResponse));
    },
    drain() {
      draining = true;
    },
    close() {
      proxy.close();
      agent.destroy();
    },
  };
}
