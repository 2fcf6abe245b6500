/**
 * An OTLP trace export request in the shape of its JSON encoding (ids in hex, 64-bit integers as decimal
 * strings, enums as numbers): what a JSON export parses to and what otlp-protobuf.ts decodes a protobuf one to,
 * so the receiver and the tests read both alike.
 */

export interface OtlpValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number | string;
  arrayValue?: { values?: OtlpValue[] };
  kvlistValue?: { values?: OtlpKeyValue[] };
  /** base64, as in JSON. */
  bytesValue?: string;
}
export interface OtlpKeyValue {
  key: string;
  value?: OtlpValue;
}
export interface OtlpEvent {
  timeUnixNano?: string | number;
  name: string;
  attributes?: OtlpKeyValue[];
  droppedAttributesCount?: number;
}
export interface OtlpLink {
  traceId: string;
  spanId: string;
  traceState?: string;
  attributes?: OtlpKeyValue[];
  droppedAttributesCount?: number;
  flags?: number;
}
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  traceState?: string;
  parentSpanId?: string;
  flags?: number;
  name: string;
  kind?: number;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  attributes?: OtlpKeyValue[];
  droppedAttributesCount?: number;
  events?: OtlpEvent[];
  droppedEventsCount?: number;
  links?: OtlpLink[];
  droppedLinksCount?: number;
  status?: { code?: number; message?: string };
}
export interface OtlpScope {
  name?: string;
  version?: string;
  attributes?: OtlpKeyValue[];
  droppedAttributesCount?: number;
}
export interface OtlpScopeSpans {
  scope?: OtlpScope;
  spans?: OtlpSpan[];
  schemaUrl?: string;
}
export interface OtlpResourceSpans {
  resource?: { attributes?: OtlpKeyValue[]; droppedAttributesCount?: number };
  scopeSpans?: OtlpScopeSpans[];
  schemaUrl?: string;
}
export interface OtlpExport {
  resourceSpans?: OtlpResourceSpans[];
}
