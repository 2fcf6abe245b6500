/**
 * `txmesh injector` as the API server meets it: the real command over HTTPS, configured with the sidecar the
 * chart renders, given real AdmissionReview JSON. A patched pod must validate against the Kubernetes schema
 * and carry exactly one native sidecar; a pod that did not ask, or already has one, is left alone.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Pod } from 'kubernetes-models/v1';
import { awaitReady } from 'txmesh';
import { FIXTURES, find, flag, only, renderChart, type K8sObject } from './helm-chart.ts';
import { applyJsonPatch, type PatchOp } from './json-patch.ts';
import { TXMESH_BIN } from './helpers.ts';

const shardUrls = [0, 1, 2].map((k) => `http://txmesh-coordinator-${k}.txmesh-coordinator-headless.txmesh.svc:7000`).join(',');

interface Injector {
  url: string;
  ca: Buffer;
}

/** The name the API server calls the webhook by, which the chart's certificate is made for. */
const SERVICE_DNS = 'txmesh-injector.txmesh.svc';

/**
 * Runs `txmesh injector` as the chart's Deployment does: with the chart's sidecar template (ConfigMap) and the
 * serving certificate and key the chart generated (Secret); clients trust only the webhook's caBundle.
 */
async function startInjectorProcess(objects: K8sObject[]): Promise<Injector & { stop(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'txmesh-injector-'));
  const secret = only(objects, 'Secret', 'txmesh-injector-tls').data;
  const [cert, key, template] = [join(dir, 'tls.crt'), join(dir, 'tls.key'), join(dir, 'sidecar-template.json')];
  writeFileSync(cert, Buffer.from(secret['tls.crt'], 'base64'));
  writeFileSync(key, Buffer.from(secret['tls.key'], 'base64'));
  writeFileSync(template, only(objects, 'ConfigMap', 'txmesh-injector').data['sidecar-template.json']);
  const child: ChildProcess = spawn(process.execPath, [TXMESH_BIN, 'injector', '--port', '0', '--tls-cert', cert, '--tls-key', key, '--sidecar-template', template], { stdio: ['ignore', 'pipe', 'inherit'] });
  const stop = (): void => {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  const url = await awaitReady(child);
  const caBundle = only(objects, 'MutatingWebhookConfiguration').webhooks[0].clientConfig.caBundle as string;
  return { url, ca: Buffer.from(caBundle, 'base64'), stop };
}

/** POSTs JSON over HTTPS as the API server does: trusting only caBundle, checking the certificate names the Service. */
function post(injector: Injector, path: string, body: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request(`${injector.url}${path}`, { method: 'POST', ca: injector.ca, servername: SERVICE_DNS, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const fixture = (): any => JSON.parse(readFileSync(join(FIXTURES, 'admission-review-deployment-pod.json'), 'utf8'));

function review(pod: unknown, uid = 'b0c1d2e3-f4a5-4b6c-8d7e-9f0a1b2c3d4e'): any {
  const body = fixture();
  body.request.uid = uid;
  body.request.object = pod;
  return body;
}

function annotated(pod: any, annotations: Record<string, string>): any {
  const copy = structuredClone(pod);
  copy.metadata.annotations = { ...copy.metadata.annotations, ...annotations };
  return copy;
}

const ASK = { 'txmesh.io/inject': 'true', 'txmesh.io/service': 'payment', 'txmesh.io/app-port': '8080' };

/** Sends the pod through the webhook and applies its patch; returns the answer and the pod the API server would store. */
async function admit(injector: Injector, pod: any): Promise<{ response: any; pod: any }> {
  const sent = review(pod);
  const { status, json } = await post(injector, '/mutate', JSON.stringify(sent));
  assert.equal(status, 200);
  assert.equal(json.apiVersion, 'admission.k8s.io/v1');
  assert.equal(json.kind, 'AdmissionReview');
  assert.equal(json.response.uid, sent.request.uid, 'the answer names the request it answers');
  if (json.response.patch === undefined) return { response: json.response, pod };
  assert.equal(json.response.patchType, 'JSONPatch');
  const patch = JSON.parse(Buffer.from(json.response.patch, 'base64').toString()) as PatchOp[];
  return { response: json.response, pod: applyJsonPatch(pod, patch) };
}

function sidecarsOf(pod: any): any[] {
  return [...(pod.spec.initContainers ?? []), ...pod.spec.containers].filter((c: any) => c.name === 'txmesh-sidecar');
}

/** Kubernetes' own validation of the stored pod: a schema error throws. */
function assertValidPod(pod: any): void {
  const named = { ...pod, metadata: { ...pod.metadata, name: pod.metadata.name ?? `${pod.metadata.generateName}x7k2p` } };
  new Pod(named).validate();
}

describe('txmesh injector (mutating admission webhook)', () => {
  let objects: K8sObject[];
  let injector: Injector & { stop(): void };
  before(async () => {
    objects = renderChart(['-f', join(FIXTURES, 'helm-values-3-shards.yaml')]);
    injector = await startInjectorProcess(objects);
  });
  after(() => injector?.stop());

  it('serves the certificate the chart generated, for the Service name, trusted through caBundle alone', async () => {
    const other = renderChart(['-f', join(FIXTURES, 'helm-values-3-shards.yaml')]);
    const otherCa = Buffer.from(only(other, 'MutatingWebhookConfiguration').webhooks[0].clientConfig.caBundle, 'base64');
    await assert.rejects(post({ ...injector, ca: otherCa }, '/mutate', '{}'), 'another render made another CA: not trusted');
    const wrongName = new Promise((resolve, reject) => request(`${injector.url}/healthz`, { ca: injector.ca, servername: 'evil.txmesh.svc' }, resolve).on('error', reject).end());
    await assert.rejects(wrongName, /altnames|Hostname/, 'the certificate names the injector Service only');
  });

  it('leaves a Deployment pod without the annotation unchanged', async () => {
    const pod = fixture().request.object;
    const { response, pod: stored } = await admit(injector, pod);
    assert.deepEqual(response, { uid: response.uid, allowed: true });
    assert.deepEqual(stored, pod);
  });

  it('adds exactly one native sidecar to an annotated Deployment pod; the patched pod validates', async () => {
    const pod = annotated(fixture().request.object, ASK);
    const { response, pod: stored } = await admit(injector, pod);
    assert.equal(response.allowed, true);
    assertValidPod(stored);
    const sidecars = sidecarsOf(stored);
    assert.equal(sidecars.length, 1);
    assert.equal(stored.spec.initContainers[0].name, 'txmesh-sidecar', 'first init container: started before the app');
    const sidecar = sidecars[0];
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.equal(flag(sidecar.args, 'coordinator'), shardUrls, 'every shard by its stable DNS name');
    const env = Object.fromEntries(sidecar.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
    assert.equal(env.TXMESH_SERVICE, 'payment');
    assert.equal(env.TXMESH_APP_PORT, '8080');
    assert.deepEqual(env.TXMESH_POD_IP, { fieldRef: { fieldPath: 'status.podIP' } });
    assert.equal(sidecar.securityContext.runAsNonRoot, true);
    // The app's container and volumes are untouched; the sidecar's data volume is added.
    assert.deepEqual(stored.spec.containers, pod.spec.containers);
    assert.deepEqual(stored.spec.volumes.slice(0, 1), pod.spec.volumes);
    assert.deepEqual(stored.spec.volumes[1], { name: 'txmesh-sidecar-data', emptyDir: {} });
    assert.deepEqual(stored.spec.volumes[2], { name: 'txmesh-service-key', secret: { secretName: 'txmesh-key-payment', defaultMode: 0o440 } }, "the service's key, from its own Secret");
    assert.equal(flag(sidecar.args, 'key-file'), '/etc/txmesh/service-key/service.key');
    assert.equal(stored.metadata.annotations['txmesh.io/status'], 'injected');
    assert.equal(stored.metadata.annotations['kubectl.kubernetes.io/restartedAt'], '2026-11-27T10:00:00Z');

    const again = await admit(injector, stored);
    assert.deepEqual(again.response, { uid: again.response.uid, allowed: true }, 'no second sidecar');
    assert.equal(sidecarsOf(again.pod).length, 1);
  });

  it('injects into every example pod the chart renders, each naming every shard', async () => {
    const examples = find(objects, 'StatefulSet').filter((s) => s.metadata.annotations === undefined && s.spec.template.metadata.annotations?.['txmesh.io/inject'] === 'true');
    assert.equal(examples.length, 4);
    for (const sts of examples) {
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: `${sts.metadata.name}-0`, namespace: 'txmesh', ...sts.spec.template.metadata }, spec: sts.spec.template.spec };
      const { pod: stored } = await admit(injector, pod);
      assertValidPod(stored);
      const [sidecar, ...more] = sidecarsOf(stored);
      assert.equal(more.length, 0);
      assert.equal(sidecar.restartPolicy, 'Always');
      assert.equal(flag(sidecar.args, 'coordinator'), shardUrls);
      assert.equal(sidecar.env.find((e: any) => e.name === 'TXMESH_SERVICE').value, sts.spec.template.metadata.annotations['txmesh.io/service']);
    }
  });

  it('keeps a volume the pod brings for the sidecar (a StatefulSet claim): the PVC option', async () => {
    const pod = annotated(fixture().request.object, ASK);
    pod.spec.volumes.push({ name: 'txmesh-sidecar-data', persistentVolumeClaim: { claimName: 'txmesh-sidecar-data-payment-0' } });
    const { pod: stored } = await admit(injector, pod);
    assertValidPod(stored);
    assert.deepEqual(stored.spec.volumes.slice(0, -1), pod.spec.volumes, 'no second volume of that name');
    assert.equal(stored.spec.volumes.at(-1).secret.secretName, 'txmesh-key-payment', 'only the key volume is added');
    assert.equal(sidecarsOf(stored).length, 1);
  });

  it('refuses a pod whose annotations are unusable, saying what to fix', async () => {
    // 7071: the sidecar's probe port (the app would answer its probes, or fail to listen).
    for (const bad of [{ 'txmesh.io/app-port': 'http' }, { 'txmesh.io/app-port': '70000' }, { 'txmesh.io/app-port': '7071' }, { 'txmesh.io/service': 'Payment Service' }]) {
      const { response } = await admit(injector, annotated(fixture().request.object, { ...ASK, ...bad }));
      assert.equal(response.allowed, false);
      assert.equal(response.status.code, 400);
      assert.match(response.status.message, /^TXM_BAD_INJECTION: .*txmesh\.io\//);
      assert.equal(response.patch, undefined);
    }
    const missing = await admit(injector, annotated(fixture().request.object, { 'txmesh.io/inject': 'true' }));
    assert.equal(missing.response.allowed, false);
  });

  it('answers a body that is not an AdmissionReview with a catalogue error and keeps serving', async () => {
    for (const body of ['{"kind":"Pod"}', 'not json', JSON.stringify({ ...fixture(), request: { object: {} } })]) {
      const { status, json } = await post(injector, '/mutate', body);
      assert.equal(status, 400);
      assert.equal(json.error.code, 'TXM_BAD_REQUEST');
    }
    const { pod } = await admit(injector, annotated(fixture().request.object, ASK));
    assert.equal(sidecarsOf(pod).length, 1);
  });
});
