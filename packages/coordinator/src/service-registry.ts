/**
 * Which sidecar serves which service, with its latest resource report (from heartbeats and from batch
 * answers) and the scheduler's view of it. Registration doubles as the heartbeat. The service → sidecarUrl
 * mapping is written to the decision log's database (unforced) so that after a restart recovery can
 * deliver commits before the sidecars have re-registered.
 */
import type { RegisterServiceRequest, ResourceReport, ServiceView } from '@txmesh/protocol';
import type { DecisionLog } from './decision-log.ts';
import type { Scheduler } from './scheduler.ts';

export class ServiceRegistry {
  readonly #log: DecisionLog;
  readonly #services = new Map<string, ServiceView>();
  readonly #scheduler: Scheduler | undefined;

  constructor(log: DecisionLog, scheduler?: Scheduler) {
    this.#log = log;
    this.#scheduler = scheduler;
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
    const report = newer(request.report, known?.report);
    if (report) view.report = report;
    if (request.report) this.#scheduler?.noteReport(request.service, request.report);
    this.#services.set(request.service, view);
    // Heartbeats repeat every second; only a new address is worth a write.
    if (!known || known.sidecarUrl !== request.sidecarUrl) {
      this.#log.saveService({ service: view.service, sidecarUrl: view.sidecarUrl, registeredAt: view.registeredAt });
    }
    return view;
  }

  /** A report piggybacked on a batch answer: fresher than the last heartbeat under load. */
  noteReport(service: string, report: ResourceReport): void {
    const view = this.#services.get(service);
    if (view) {
      const latest = newer(report, view.report);
      if (latest) view.report = latest;
    }
    this.#scheduler?.noteReport(service, report);
  }

  has(service: string): boolean {
    return this.#services.has(service);
  }

  sidecarUrl(service: string): string | undefined {
    return this.#services.get(service)?.sidecarUrl;
  }

  list(): ServiceView[] {
    const views = [...this.#services.values()].sort((a, b) => a.service.localeCompare(b.service));
    const scheduler = this.#scheduler;
    return scheduler ? views.map((v) => ({ ...v, scheduler: scheduler.view(v.service) })) : views;
  }
}

/** Reports from heartbeats and batch answers interleave; keep the one taken last. */
function newer(a: ResourceReport | undefined, b: ResourceReport | undefined): ResourceReport | undefined {
  if (!a) return b;
  if (!b) return a;
  return a.at >= b.at ? a : b;
}
