/**
 * Makes in-doubt branches visible to an administrator: one error-level log line when a branch crosses
 * the threshold (not one per retry), and, when a webhook is configured, a POST of the current list at
 * most once per alert interval. The webhook is best effort: 2 s timeout, failures logged at warn, and
 * nothing here ever blocks or fails delivery.
 *
 * Once per branch, not once per process: after a restart, the branches of recovered decisions that were
 * in doubt already are summarised in the one recovery line (noteRecovery) instead of one line each, so
 * a shard restarted again and again does not repeat them. A branch that crosses the threshold in this
 * process gets its own line.
 */
import { JsonHttpClient, describeAnswer } from '@txmesh/client';
import type { InDoubtBranch } from '@txmesh/protocol';
import type { ManagerLogger } from './manager-options.ts';
import type { RecoverySummary } from './transaction-manager.ts';

export interface InDoubtAlert {
  kind: 'txmesh.in-doubt';
  shard: number;
  branches: InDoubtBranch[];
}

export interface InDoubtMonitorOptions {
  shard: number;
  /** The manager's inDoubt(): branches past the threshold right now. */
  list: () => InDoubtBranch[];
  logger: ManagerLogger;
  alertWebhookUrl?: string;
  /** How often the list is looked at. Default 1000. */
  checkIntervalMs?: number;
  /** At most one alert per this interval. Default 60 000. */
  alertIntervalMs?: number;
  alertTimeoutMs?: number;
  now?: () => number;
}

export const ALERT_TIMEOUT_MS = 2000;

const keyOf = (b: InDoubtBranch): string => `${b.txId}\u0000${b.service}`;

export class InDoubtMonitor {
  readonly #options: InDoubtMonitorOptions;
  readonly #now: () => number;
  /** Branches already reported at error level; forgotten once they leave the list (acknowledged). */
  #reported = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #lastAlertAt = -Infinity;
  #alerting: Promise<void> | undefined;
  /** The webhook's answer is read only for its status: a small bound is plenty. */
  readonly #http = new JsonHttpClient({ timeoutMs: ALERT_TIMEOUT_MS, connections: 1, maxAnswerBytes: 64 * 1024 });
  alertsSent = 0;
  alertFailures = 0;

  constructor(options: InDoubtMonitorOptions) {
    if (options.alertWebhookUrl !== undefined) {
      const url = new URL(options.alertWebhookUrl); // throws on a malformed URL, at start
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('alertWebhookUrl must be an http(s) URL');
    }
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.check(), this.#options.checkIntervalMs ?? 1000);
    this.#timer.unref();
  }

  /**
   * Called once after recovery resumed delivery: one line for all resumed decisions, and their branches
   * already past the threshold count as reported, so they get no line of their own in this process.
   */
  noteRecovery(summary: RecoverySummary): void {
    for (const b of summary.inDoubt) this.#reported.add(keyOf(b));
    if (summary.resumed === 0) return;
    // Counted by decision: the log does not say which branches acknowledged before the restart.
    const alreadyInDoubt = new Set(summary.inDoubt.map((b) => b.txId)).size;
    const fields = { resumed: summary.resumed, alreadyInDoubt, oldestAgeMs: summary.inDoubt[0]?.ageMs };
    if (alreadyInDoubt === 0) {
      this.#options.logger.warn(fields, 'recovery resumed delivery of unfinished decisions');
      return;
    }
    this.#options.logger.error(
      fields,
      `recovery resumed delivery of unfinished decisions; ${alreadyInDoubt} of them were in doubt already, their branches are not logged one by one (see GET /v1/in-doubt)`,
    );
  }

  /** One look at the list: log newly in-doubt branches, maybe alert. Returns the alert in flight, if any. */
  check(): Promise<void> | undefined {
    const branches = this.#options.list();
    const current = new Set<string>();
    for (const b of branches) {
      const key = keyOf(b);
      current.add(key);
      if (this.#reported.has(key)) continue;
      this.#options.logger.error(
        { txId: b.txId, service: b.service, action: b.action, ageMs: b.ageMs, attempts: b.attempts, lastError: b.lastError, sidecarUrl: b.sidecarUrl },
        'branch in doubt: its outcome has not been acknowledged; delivery keeps retrying (see GET /v1/in-doubt)',
      );
    }
    this.#reported = current;
    const url = this.#options.alertWebhookUrl;
    if (url === undefined || branches.length === 0 || this.#alerting) return undefined;
    const now = this.#now();
    if (now - this.#lastAlertAt < (this.#options.alertIntervalMs ?? 60_000)) return undefined;
    this.#lastAlertAt = now;
    const alert: InDoubtAlert = { kind: 'txmesh.in-doubt', shard: this.#options.shard, branches };
    this.#alerting = this.#post(url, alert).finally(() => {
      this.#alerting = undefined;
    });
    return this.#alerting;
  }

  async #post(url: string, alert: InDoubtAlert): Promise<void> {
    try {
      const target = new URL(url);
      const answer = await this.#http.request(target.origin, `${target.pathname}${target.search}`, { body: alert, timeoutMs: this.#options.alertTimeoutMs ?? ALERT_TIMEOUT_MS });
      if (answer.status < 200 || answer.status >= 300) throw new Error(describeAnswer(answer));
      this.alertsSent += 1;
    } catch (err) {
      this.alertFailures += 1;
      this.#options.logger.warn({ url, err: err instanceof Error ? err.message : String(err), branches: alert.branches.length }, 'in-doubt alert webhook failed');
    }
  }

  /** Stops the schedule; an alert in flight finishes (bounded by its timeout). */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#alerting;
    await this.#http.close();
  }
}
