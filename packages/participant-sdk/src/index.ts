export { openParticipantDatabase } from './database.ts';
export { BusinessRefusal, defineOperation, type HookContext, type OperationHandlers } from './operation.ts';
export { createParticipant, ItemReasons, type Participant, type ParticipantOptions, type ParticipantStats } from './participant.ts';
export { ResourceUsageMeter, type ResourceUsageOptions } from './resource-usage.ts';
export { CgroupReader, parseCpuMax, parseCfsQuota, parseMemoryLimit, parseCpuStatUsageMicros, parseProcSelfCgroup, type CgroupLimits } from './cgroup.ts';
export { LockManager, LockWaitError, type LockFailure } from './lock-manager.ts';
export { resolveBranchRetention, minimumBranchRetentionMs, DEFAULT_BRANCH_RETENTION_MS, type BranchRetentionOptions } from './branch-retention.ts';
export { ParticipantSteps, type ParticipantStep } from './steps.ts';
