/**
 * Spans around the hooks a participant runs for each item of a batch (prepare, commit, rollback), as
 * children of the trace context the item carries, in the TracerProvider the service registered. Lock
 * waits and lock refusals become span events.
 */
import { subscribe } from 'node:diagnostics_channel';
import type { Span } from '@opentelemetry/api';
// The span helpers alone: the client's index would load its transports into every participant service.
import { withItemSpans } from '@txmesh/client/spans';
import { SpanEvents, SpanNames, type BranchBatchRequest, type BranchBatchResponse } from '@txmesh/protocol';
import { lockWaitChannel, type LockWaitEvent } from './lock-manager.ts';

/** Reasons a prepare gives when it lost a lock (see ItemReasons). */
const LOCK_REFUSALS = new Set(['LOCK_TIMEOUT', 'LOCK_CONFLICT']);

/** Recording spans of items running now, by transaction id: where a lock wait's event goes. */
const running = new Map<string, Span>();
let listening = false;

function onLockWait(message: unknown): void {
  const event = message as LockWaitEvent;
  running.get(event.txId)?.addEvent(SpanEvents.LOCK_WAIT, {
    'txmesh.lock.key': event.key,
    'txmesh.lock.mode': event.mode,
    'txmesh.lock.blockers': event.blockers,
    'txmesh.lock.wait_ms': event.waitMs,
    'txmesh.lock.younger': event.younger,
  });
}

export async function withHookSpans(service: string, batch: BranchBatchRequest, handle: (batch: BranchBatchRequest) => Promise<BranchBatchResponse>): Promise<BranchBatchResponse> {
  let response: BranchBatchResponse | undefined;
  // The hooks are the last hop: the items go on as they came (handOn: false), so the batch does too.
  await withItemSpans({ scope: '@txmesh/participant-sdk', name: SpanNames.HOOK, service, handOn: false }, batch.items, async (items, spans) => {
    const mine: string[] = [];
    spans.forEach((span, i) => {
      if (!span?.isRecording()) return;
      const txId = items[i]!.txId;
      running.set(txId, span);
      mine.push(txId);
    });
    if (mine.length > 0 && !listening) {
      listening = true;
      subscribe(lockWaitChannel.name, onLockWait);
    }
    try {
      response = await handle(batch);
    } finally {
      for (const txId of mine) running.delete(txId);
    }
    response.results.forEach((result, i) => {
      const span = spans[i];
      if (span?.isRecording() && result.reason !== undefined && LOCK_REFUSALS.has(result.reason)) {
        span.addEvent(SpanEvents.LOCK_REFUSED, { 'txmesh.lock.reason': result.reason, ...(result.message !== undefined ? { 'txmesh.lock.message': result.message } : {}) });
      }
    });
    return response.results;
  });
  return response!;
}
