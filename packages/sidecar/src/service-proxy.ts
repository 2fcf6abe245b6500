/**
 * Proxies the service's ordinary traffic. Headers go through untouched (x-txmesh-tx, traceparent, Host),
 * bodies are streamed, never parsed. Each request is timed for the resource report.
 */
import http from 'node:http';
import https from 'node:https';
import httpProxy from 'http-proxy';
import { TxmeshError } from '@txmesh/protocol';
import type { FastifyBaseLogger } from 'fastify';
import type { ResourceMonitor } from './resource-monitor.ts';

export interface ServiceProxy {
  handle(req: http.IncomingMessage, res: http.ServerResponse): void;
  close(): void;
}

export function createServiceProxy(serviceUrl: string, monitor: ResourceMonitor, log: FastifyBaseLogger): ServiceProxy {
  const agent = new URL(serviceUrl).protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  const proxy = httpProxy.createProxyServer({ target: serviceUrl, agent, xfwd: false, changeOrigin: false });

  function fail(err: Error, res: http.ServerResponse): void {
    if (res.headersSent || res.destroyed) {
      // Part of the service's answer already left: cutting the connection is the only honest signal.
      res.destroy();
      return;
    }
    log.warn({ err: err.message }, 'proxying to the service failed');
    const body = JSON.stringify(new TxmeshError('TXM_SERVICE_UNREACHABLE', (err as NodeJS.ErrnoException).code ?? err.message).toBody());
    res.writeHead(502, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  return {
    handle(req, res) {
      res.once('close', monitor.requestStarted());
      proxy.web(req, res, {}, (err) => fail(err, res as http.ServerResponse));
    },
    close() {
      proxy.close();
      agent.destroy();
    },
  };
}
