/**
 * What both OTLP encodings (span-protobuf.ts, span-json.ts) share: spans grouped as the export request nests
 * them (resource, then instrumentation scope, in the order they first appear), and the span flags field.
 */
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';

/** The W3C trace flags in the low byte; bit 8 says whether the parent's remoteness is known, bit 9 that it is remote. */
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;

export function spanFlags(traceFlags: number, parentIsRemote: boolean | undefined): number {
  return (traceFlags & 0xff) | HAS_IS_REMOTE | (parentIsRemote ? IS_REMOTE : 0);
}

/**
 * Spans by resource, then by scope object. A process has one resource and a few tracers, so a batch makes
 * two or three maps; the SDK hands the same scope object with every span of a tracer.
 */
export function groupByResourceAndScope(spans: readonly ReadableSpan[]): Map<Resource, Map<InstrumentationScope, ReadableSpan[]>> {
  const byResource = new Map<Resource, Map<InstrumentationScope, ReadableSpan[]>>();
  for (const span of spans) {
    let byScope = byResource.get(span.resource);
    if (byScope === undefined) byResource.set(span.resource, (byScope = new Map()));
    const list = byScope.get(span.instrumentationScope);
    if (list === undefined) byScope.set(span.instrumentationScope, [span]);
    else list.push(span);
  }
  return byResource;
}
