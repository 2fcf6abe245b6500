/** Which OTLP/HTTP encoding the environment asks for; apart from the exporter so reading it loads no SDK module. */

export const OtlpHttpProtocol = { PROTOBUF: 'http/protobuf', JSON: 'http/json' } as const;
export type OtlpHttpProtocol = (typeof OtlpHttpProtocol)[keyof typeof OtlpHttpProtocol];

/**
 * The traces protocol the environment asks for (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, then OTEL_EXPORTER_OTLP_PROTOCOL,
 * then the spec's default http/protobuf), or undefined when it is one the exporter does not speak (grpc): the
 * NodeSDK then builds its own exporter.
 */
export function otlpHttpProtocolOf(env: NodeJS.ProcessEnv): OtlpHttpProtocol | undefined {
  const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL?.trim() || env.OTEL_EXPORTER_OTLP_PROTOCOL?.trim() || OtlpHttpProtocol.PROTOBUF).toLowerCase();
  if (protocol === OtlpHttpProtocol.PROTOBUF || protocol === OtlpHttpProtocol.JSON) return protocol;
  return undefined;
}
