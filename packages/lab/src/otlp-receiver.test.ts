import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OtlpReceiver } from './otlp-receiver.ts';

describe('OTLP receiver: the environment of a benchmark export', () => {
  it('exports every span by default, and a share of the transactions when asked (bench --trace-sample)', async (t) => {
    const receiver = await OtlpReceiver.start({ keepSpans: false });
    t.after(() => receiver.close());
    const every = receiver.benchmarkEnv();
    assert.equal(every.OTEL_TRACES_SAMPLER, 'always_on');
    assert.equal(every.OTEL_TRACES_SAMPLER_ARG, undefined);
    assert.equal(every.OTEL_EXPORTER_OTLP_PROTOCOL, 'http/protobuf');
    assert.equal(every.OTEL_EXPORTER_OTLP_ENDPOINT, receiver.url);
    const tenth = receiver.benchmarkEnv(0.1);
    assert.equal(tenth.OTEL_TRACES_SAMPLER, 'parentbased_traceidratio');
    assert.equal(tenth.OTEL_TRACES_SAMPLER_ARG, '0.1');
  });
});
