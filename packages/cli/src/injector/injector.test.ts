import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildInjector, startInjector } from './injector-server.ts';
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

  it('with credentials, mounts the key of the annotated service from its own Secret (the chart gives the prefix)', () => {
    const withKey = validateSidecarTemplate({
      ...template,
      container: { ...template.container, volumeMounts: [...template.container.volumeMounts, { name: 'txmesh-service-key', mountPath: '/etc/txmesh/service-key', readOnly: true }] },
      keyVolume: { name: 'txmesh-service-key', secret: { secretName: 'txmesh-key-', defaultMode: 0o440 } },
    });
    const fresh = injectionPatch({ metadata: { annotations: ask }, spec: { containers: [{ name: 'app' }] } }, withKey);
    assert.deepEqual(fresh[1]!.value, [
      { name: 'txmesh-sidecar-data', emptyDir: {} },
      { name: 'txmesh-service-key', secret: { secretName: 'txmesh-key-inventory', defaultMode: 0o440 } },
    ]);
    const withPvc = injectionPatch({ metadata: { annotations: ask }, spec: { containers: [{ name: 'app' }], volumes: [{ name: 'txmesh-sidecar-data' }] } }, withKey);
    assert.deepEqual(withPvc.filter((op) => op.path === '/spec/volumes/-').map((op) => op.value), [{ name: 'txmesh-service-key', secret: { secretName: 'txmesh-key-inventory', defaultMode: 0o440 } }]);
    assert.equal(withKey.keyVolume!.secret.secretName, 'txmesh-key-', 'the template itself is not changed');
    assert.throws(() => validateSidecarTemplate({ ...template, keyVolume: { name: 'txmesh-service-key', secret: { secretName: 'txmesh-key-' } } }), /must mount the key volume/);
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

/** A self-signed pair for 127.0.0.1 written to dir/<name>.crt and .key; the certificate is its own CA. */
function selfSigned(dir: string, name: string): { cert: string; key: string } {
  const [cert, key] = [join(dir, `${name}.crt`), join(dir, `${name}.key`)];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key };
}

function healthWith(url: string, ca: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    // agent: false: a fresh connection and handshake each time, so the certificate served now is the one checked.
    request(`${url}/healthz`, { ca, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on('error', reject)
      .end();
  });
}

describe('injector TLS', () => {
  it('serves the renewed certificate once the files change, without a restart', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'txmesh-injector-tls-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const first = selfSigned(dir, 'first');
    const tls = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
    renameSync(first.cert, tls.certFile);
    renameSync(first.key, tls.keyFile);
    const firstCa = readFileSync(tls.certFile);
    const injector = await startInjector({ template, tls, port: 0, logLevel: 'silent', tlsReloadMs: 20 });
    t.after(() => injector.close());
    assert.equal(await healthWith(injector.url, firstCa), 200);

    // cert-manager renews: new files replace the old ones (a rename, as the kubelet's atomic writer does).
    const second = selfSigned(dir, 'second');
    const secondCa = readFileSync(second.cert);
    renameSync(second.cert, tls.certFile);
    renameSync(second.key, tls.keyFile);
    const deadline = Date.now() + 5000;
    let served = false;
    while (!served && Date.now() < deadline) {
      served = await healthWith(injector.url, secondCa).then(() => true, () => false);
      if (!served) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(served, 'the renewed certificate is served');
    await assert.rejects(healthWith(injector.url, firstCa), 'the old certificate is no longer served');
  });
});
