import type { BranchBatchResponse, BranchItem } from '@txmesh/protocol';

/** Sends one batch of branch items to one sidecar; results come back in item order. */
export interface BranchTransport {
  send(sidecarUrl: string, items: BranchItem[], timeoutMs: number): Promise<BranchBatchResponse>;
}
