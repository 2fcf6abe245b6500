export { RetryLaterError, createTxmeshClient, type TxmeshClient, type TxmeshClientOptions } from './txmesh-client.ts';
