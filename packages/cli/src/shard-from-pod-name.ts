/**
 * On Kubernetes a coordinator shard is one pod of a StatefulSet: its ordinal, the number after the last
 * dash of the pod name (txmesh-coordinator-2), is the shard index, so a pod rescheduled elsewhere keeps its
 * shard and its volume.
 */
import { UsageError } from './args.ts';

export function shardFromPodName(podName: string): number {
  const match = /-([0-9]+)$/.exec(podName);
  const shard = match ? Number(match[1]) : Number.NaN;
  if (!Number.isSafeInteger(shard)) throw new UsageError(`--shard-from-pod-name expects a StatefulSet pod name ending in -<ordinal>, got "${podName}"`);
  return shard;
}
