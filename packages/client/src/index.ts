export { CallDeadline } from './call-deadline.ts';
export { BatchChannel, DEFAULT_RETRY_REFUSED_MS, RETRY_BUSY_MS, type BatchChannelOptions } from './batch-channel.ts';
export { DEFAULT_CLIENT_CONNECTIONS, RetryLaterError, createTxmeshClient, type ShardAnswer, type TxmeshClient, type TxmeshClientOptions } from './txmesh-client.ts';
export {
  CallFailure,
  DEFAULT_MAX_ANSWER_BYTES,
  HttpCallError,
  JsonHttpClient,
  describeAnswer,
  type JsonAnswer,
  type JsonCall,
  type JsonHttpClientOptions,
  type HttpStack,
} from './json-http-client.ts';
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
export { withItemSpans, linksTo, tracerOf, spanNameOf, type ItemSpanOptions, type ItemSpans } from './item-spans.ts';
export { carrierOf, contextOf, contextWithSpan, hasValidIds } from './trace-carrier.ts';
export { withTraceHeaders, traceLogFields } from './transaction-span.ts';
