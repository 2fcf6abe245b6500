export { RetryLaterError, createTxmeshClient, type TxmeshClient, type TxmeshClientOptions } from './txmesh-client.ts';
// What the client's answers and refusals are made of, so an application needs no second txmesh import for them.
export {
  ErrorCodes,
  Outcome,
  TxmeshError,
  Vote,
  isErrorCode,
  type BeginTransactionRequest,
  type ErrorCode,
  type OperationSpec,
  type ParticipantResult,
  type ParticipantSpec,
  type TransactionResult,
  type TransactionStatus,
} from '@txmesh/protocol';
