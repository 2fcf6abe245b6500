export { openParticipantDatabase } from './database.ts';
export { BusinessRefusal, defineOperation, type HookContext, type OperationHandlers } from './operation.ts';
export { createParticipant, ItemReasons, type Participant, type ParticipantOptions } from './participant.ts';
export { createTxmeshClient, type TxmeshClient, type TxmeshClientOptions } from './txmesh-client.ts';
export { LockManager, LockWaitError, type LockFailure } from './lock-manager.ts';
