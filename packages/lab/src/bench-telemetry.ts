/**
 * `txmesh bench --telemetry`: what observing transactions costs. Two more cluster runs beside the main one
 * (metrics served, no tracing): one with no OpenTelemetry SDK in any member, one exporting every span
 * (always_on) over OTLP/HTTP protobuf to a receiver in this process, with the SDK's default batching. The
 * load generator registers no provider in any run, so the figures are txmesh's own cost.
 */
import { describeRun } from './bench-format.ts';
import type { NullEchoFigures } from './bench-null-echo.ts';
import { NO_SDK_ENV, OPTIMISED_ENV, type BenchOptions } from './bench-options.ts';
import { runCluster } from './bench-cluster-run.ts';
import type { RunFigures } from './bench-run-figures.ts';
import { OtlpReceiver } from './otlp-receiver.ts';

export interface TelemetryComparison {
  /** Committed tx/s of the runs, against the main run's (metrics served, no tracing). */
  otlpOverMetrics: number;
  noSdkOverMetrics: number;
  noSdk: RunFigures;
  otlp: RunFigures;
  /** What the receiver got over the whole OTLP run (warm-up and idle included). */
  receiver: { spans: number; requests: number };
}

export async function compareTelemetry(main: RunFigures, nullEcho: NullEchoFigures, options: BenchOptions, say: (line: string) => void): Promise<TelemetryComparison> {
  const noSdk = await runCluster({ label: 'no-sdk', env: NO_SDK_ENV, probe: false, verify: true }, options, say);
  say(describeRun(noSdk, nullEcho));
  const receiver = await OtlpReceiver.start({ keepSpans: false });
  let otlp: RunFigures;
  try {
    const env = { ...OPTIMISED_ENV, ...(receiver.benchmarkEnv((options.traceSamplePercent ?? 100) / 100) as Record<string, string>) };
    otlp = await runCluster({ label: 'otlp', env, probe: false, verify: true, spansReceived: () => receiver.count }, options, say);
  } finally {
    await receiver.close();
  }
  say(describeRun(otlp, nullEcho));
  say(`[otlp] ${otlp.spans?.inWindow ?? 0} spans exported in the window, ${otlp.spans?.perCommittedTx ?? 0} per committed transaction`);
  const ratio = (a: number, b: number): number => (b > 0 ? Number((a / b).toPrecision(4)) : 0);
  return {
    otlpOverMetrics: ratio(otlp.committedTps, main.committedTps),
    noSdkOverMetrics: ratio(noSdk.committedTps, main.committedTps),
    noSdk,
    otlp,
    receiver: { spans: receiver.count, requests: receiver.requests },
  };
}
