import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildInjector } from './injector-server.ts';
import { injectionPatch } from './pod-patch.ts';
import { validateSidecarTemplate, type SidecarTemplate } from './sidecar-template.ts';

const template: SidecarTemplate = validateSidecarTemplate({
  container: {
    name: 'txmesh-sidecar',
    image: 'txmesh:0.1.0',
    restartPolicy: 'Always',
    args: ['sidecar', '--service=$(TXMESH_SERVICE)', '--service-url=http://127.0.0.1:$(TXMESH_APP_PORT)'],
    env: [
      { name: 'TXMESH_SERVICE', value: '' },
      { name: 'TXMESH_APP_PORT', value: '' },
    ],
    volumeMounts: [{ name: 'txmesh-sidecar-data', mountPath: '/var/lib/txmesh-sidecar' }],
  },
  volume: { name: 'txmesh-sidecar-data', emptyDir: {} },
});

const ask = { 'txmesh.io/inject': 'true', 'txmesh.io/service': 'inventory', 'txmesh.io/app-port': '3000' };

describe('injection patch', () => {
  it('creates initContainers and volumes when the pod has none, and escapes the annotation path', () => {
    const patch = injectionPatch({ metadata: { annotations: ask }, spec: { containers: [{ name: 'app' }] } }, template);
    assert.deepEqual(
      patch.map((op) => op.path),
      ['/spec/initContainers', '/spec/volumes', '/metadata/annotations/txmesh.io~1status'],
    );
    const [sidecar] = patch[0]!.value as { env: { name: string; value: string }[] }[];
    assert.deepEqual(sidecar!.env, [
      { name: 'TXMESH_SERVICE', value: 'inventory' },
      { name: 'TXMESH_APP_PORT', value: '3000' },
    ]);
    assert.equal(template.container.env[0]!.value, '', 'the template itself is not changed');
  });

  it('puts the sidecar before existing init containers and appends its volume', () => {
    const patch = injectionPatch({ metadata: { annotations: ask }, spec: { initContainers: [{ name: 'migrate' }], containers: [{ name: 'app' }], volumes: [{ name: 'cfg' }] } }, template);
    assert.deepEqual(
      patch.map((op) => op.path),
      ['/spec/initContainers/0', '/spec/volumes/-', '/metadata/annotations/txmesh.io~1status'],
    );
  });

  it('leaves pods alone unless txmesh.io/inject is exactly "true", or when a sidecar is already there', () => {
    for (const inject of ['false', 'yes', 'True', '']) {
      assert.deepEqual(injectionPatch({ metadata: { annotations: { ...ask, 'txmesh.io/inject': inject } }, spec: {} }, template), []);
    }
    assert.deepEqual(injectionPatch({ metadata: { annotations: ask }, spec: { containers: [{ name: 'txmesh-sidecar' }] } }, template), []);
  });
});

describe('sidecar template', () => {
  it('refuses a template the injector cannot use', () => {
    const good = structuredClone(template) as unknown as { container: Record<string, unknown>; volume: Record<string, unknown> };
    const broken: [string, (t: typeof good) => void][] = [
      ['not a native sidecar', (t) => delete t.container.restartPolicy],
      ['renamed', (t) => (t.container.name = 'proxy')],
      ['no service env', (t) => (t.container.env = [{ name: 'TXMESH_APP_PORT', value: '' }])],
      ['volume not mounted', (t) => (t.volume.name = 'other')],
    ];
    for (const [why, breakIt] of broken) {
      const copy = structuredClone(good);
      breakIt(copy);
      assert.throws(() => validateSidecarTemplate(copy), { name: 'SidecarTemplateError' }, why);
    }
    assert.throws(() => validateSidecarTemplate([]), { name: 'SidecarTemplateError' });
  });
});

describe('injector routes', () => {
  it('passes objects that are not pods, answers health, and refuses other content types and routes with catalogue errors', async (t) => {
    const app = buildInjector({ template, logLevel: 'silent' });
    t.after(() => app.close());
    const deployment = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u-1', kind: { group: 'apps', version: 'v1', kind: 'Deployment' }, object: { metadata: { annotations: ask } } } };
    const passed = await app.inject({ method: 'POST', url: '/mutate', payload: deployment });
    assert.deepEqual(passed.json(), { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u-1', allowed: true } });
    assert.deepEqual((await app.inject({ method: 'GET', url: '/healthz' })).json(), { ok: true });
    const text = await app.inject({ method: 'POST', url: '/mutate', payload: 'x', headers: { 'content-type': 'text/plain' } });
    assert.equal(text.statusCode, 415);
    assert.equal(text.json().error.code, 'TXM_UNSUPPORTED_MEDIA_TYPE');
    const missing = await app.inject({ method: 'GET', url: '/nope' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, 'TXM_NOT_FOUND');
  });
});
