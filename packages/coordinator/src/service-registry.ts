/**
 * Which sidecar serves which service, with its latest resource report (from heartbeats and from batch
 * answers) and the scheduler's view of it. Registration doubles as the heartbeat, and is a lease: a
 * service unseen for leaseMs takes no new transactions (its address is kept, so decided outcomes still go
 * there), and one unseen for forgetAfterMs leaves memory with its scheduler lane, and the log's table.
 * The service → sidecarUrl mapping is written to the decision log's database (unforced) so that after a
 * restart recovery can deliver commits before the sidecars have re-registered; a restarted shard gives each
 * stored service one more forgetAfterMs to heartbeat, so a name registered once (a test, a typo, junk sent
 * to an --insecure shard) leaves the table too instead of coming back at every restart.
 */
import type { RegisterServiceRequest, ResourceReport, ServiceView } from '@txmesh/protocol';
import type { DecisionLog } from './decision-log.ts';
import type { Scheduler } from './scheduler.ts';

export interface RegistryLease {
  /** Unseen this long, a service takes no new transactions. */
  leaseMs: number;
  /** Unseen this long, its entry and scheduler lane are dropped. */
  forgetAfterMs: number;
}

/** At most this often the registry looks for services to forget. */
const MAX_SWEEP_INTERVAL_MS = 30_000;

export class ServiceRegistry {
  readonly #log: DecisionLog;
  readonly #lease: RegistryLease;
  readonly #services = new Map<string, ServiceView>();
  readonly #scheduler: Scheduler | undefined;
  #nextSweep = 0;

  constructor(log: DecisionLog, lease: RegistryLease, scheduler?: Scheduler, now: number = Date.now()) {
    this.#log = log;
    this.#lease = lease;
    this.#scheduler = scheduler;
    for (const stored of log.listServices()) {
      this.#services.set(stored.service, {
        service: stored.service,
        sidecarUrl: stored.sidecarUrl,
        registeredAt: stored.registeredAt,
        // A restarted shard gives every stored service one lease to heartbeat again.
        lastSeenAt: now,
      });
    }
  }

  register(request: RegisterServiceRequest, now: number = Date.now()): ServiceView {
    this.#sweep(now);
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
    if (!view) return;
    const latest = newer(report, view.report);
    if (latest) view.report = latest;
    this.#scheduler?.noteReport(service, report);
  }

  /** Why `service` cannot take a new transaction now (never registered, or its lease ran out), or undefined. */
  unavailable(service: string, now: number = Date.now()): string | undefined {
    this.#sweep(now);
    const view = this.#services.get(service);
    if (!view) return service;
    const unseenMs = now - view.lastSeenAt;
    return unseenMs > this.#lease.leaseMs ? `${service} (its registration expired: no heartbeat for ${Math.round(unseenMs / 1000)} s)` : undefined;
  }

  /** The last address `service` registered, lease or not: decided outcomes are delivered there. */
  sidecarUrl(service: string): string | undefined {
    return this.#services.get(service)?.sidecarUrl;
  }

  list(): ServiceView[] {
    const views = [...this.#services.values()].sort((a, b) => a.service.localeCompare(b.service));
    const scheduler = this.#scheduler;
    return scheduler ? views.map((v) => ({ ...v, scheduler: scheduler.view(v.service) })) : views;
  }

  /** Drops services unseen for forgetAfterMs (at most every 30 s, or every forgetAfterMs when shorter). */
  #sweep(now: number): void {
    if (now < this.#nextSweep) return;
    this.#nextSweep = now + Math.min(MAX_SWEEP_INTERVAL_MS, this.#lease.forgetAfterMs);
    for (const [service, view] of this.#services) {
      if (now - view.lastSeenAt <= this.#lease.forgetAfterMs) continue;
      this.#services.delete(service);
      this.#scheduler?.forget(service);
      this.#log.forgetService(service);
    }
  }
}

/** Reports from heartbeats and batch answers interleave; keep the one taken last. */
function newer(a: ResourceReport | undefined, b: ResourceReport | undefined): ResourceReport | undefined {
  if (!a) return b;
  if (!b) return a;
  return a.at >= b.at ? a : b;
}
