/**
 * In-process BranchTransport for tests: no sockets. A handler decides each item's answer; returning
 * 'hang' leaves the item unanswered (the dispatcher's timeout then fails it), 'throw' fails the batch as a
 * refused connection would.
 */
import { PROTOCOL_VERSION, type BranchBatchResponse, type BranchItem, type BranchItemResult } from '@txmesh/protocol';
import type { BranchTransport } from '../branch-transport.ts';

export type FakeAnswer = BranchItemResult['status'] | { status: BranchItemResult['status']; reason?: string } | 'hang' | 'throw';
export type FakeHandler = (item: BranchItem, sidecarUrl: string, attempt: number) => FakeAnswer;

export class FakeTransport implements BranchTransport {
  readonly batches: { sidecarUrl: string; items: BranchItem[] }[] = [];
  handler: FakeHandler;
  readonly #attempts = new Map<string, number>();

  constructor(handler: FakeHandler = () => 'ok') {
    this.handler = handler;
  }

  /** Every item sent so far, optionally only one action. */
  items(action?: BranchItem['action']): BranchItem[] {
    return this.batches.flatMap((b) => b.items).filter((i) => action === undefined || i.action === action);
  }

  count(action: BranchItem['action'], service?: string): number {
    return this.items(action).filter((i) => service === undefined || i.service === service).length;
  }

  async send(sidecarUrl: string, items: BranchItem[]): Promise<BranchBatchResponse> {
    this.batches.push({ sidecarUrl, items: structuredClone(items) });
    const results: BranchItemResult[] = [];
    let hang = false;
    for (const item of items) {
      const key = `${item.action}:${item.txId}:${item.service}`;
      const attempt = (this.#attempts.get(key) ?? 0) + 1;
      this.#attempts.set(key, attempt);
      const answer = this.handler(item, sidecarUrl, attempt);
      // What Node throws when nobody listens: a system error whose code names the failure.
      if (answer === 'throw') throw Object.assign(new Error(`connect ECONNREFUSED ${new URL(sidecarUrl).host} (fake)`), { code: 'ECONNREFUSED' });
      if (answer === 'hang') {
        hang = true;
        continue;
      }
      const { status, reason } = typeof answer === 'string' ? { status: answer, reason: undefined } : answer;
      results.push({ txId: item.txId, action: item.action, status, ...(reason !== undefined ? { reason } : {}) });
    }
    // One hanging item holds its whole batch, as one slow HTTP answer would.
    if (hang) return new Promise<BranchBatchResponse>(() => {});
    return { protocolVersion: PROTOCOL_VERSION, results };
  }
}

/** Polls until check() is true or the time runs out (then fails the test with message). */
export async function eventually(check: () => boolean, message: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${message}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
