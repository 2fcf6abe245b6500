/**
 * Which sidecar serves which service. Registration doubles as the heartbeat. The service → sidecarUrl
 * mapping is written to the decision log's database (unforced) so that after a restart recovery can
 * deliver commits before the sidecars have re-registered.
 */
import type { RegisterServiceRequest, ServiceView } from '@txmesh/protocol';
import type { DecisionLog } from './decision-log.ts';

export class ServiceRegistry {
  readonly #log: DecisionLog;
  readonly #services = new Map<string, ServiceView>();

  constructor(log: DecisionLog) {
    this.#log = log;
    for (const stored of log.listServices()) {
      this.#services.set(stored.service, {
        service: stored.service,
        sidecarUrl: stored.sidecarUrl,
        registeredAt: stored.registeredAt,
        lastSeenAt: stored.registeredAt,
      });
    }
  }

  register(request: RegisterServiceRequest, now: number = Date.now()): ServiceView {
    const known = this.#services.get(request.service);
    const view: ServiceView = {
      service: request.service,
      sidecarUrl: request.sidecarUrl,
      registeredAt: known && known.sidecarUrl === request.sidecarUrl ? known.registeredAt : now,
      lastSeenAt: now,
    };
    const report = request.report ?? known?.report;
    if (report) view.report = report;
    this.#services.set(request.service, view);
    // Heartbeats repeat every second; only a new address is worth a write.
    if (!known || known.sidecarUrl !== request.sidecarUrl) {
      this.#log.saveService({ service: view.service, sidecarUrl: view.sidecarUrl, registeredAt: view.registeredAt });
    }
    return view;
  }

  has(service: string): boolean {
    return this.#services.has(service);
  }

  sidecarUrl(service: string): string | undefined {
    return this.#services.get(service)?.sidecarUrl;
  }

  list(): ServiceView[] {
    return [...this.#services.values()].sort((a, b) => a.service.localeCompare(b.service));
  }
}
