/**
 * The span helpers alone (`@txmesh/client/spans`): what a participant service needs of this package to put its
 * hooks' spans under the trace each item carries, without loading the client, its transports and undici's glue.
 */
export { withItemSpans, linksTo, tracerOf, spanNameOf, type ItemSpanOptions, type ItemSpans } from './item-spans.ts';
export { carrierOf, contextOf, contextWithSpan, hasValidIds } from './trace-carrier.ts';
