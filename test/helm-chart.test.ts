/**
 * The Helm chart, checked offline with the real helm v4 (scripts/test-tools/helm.sh): lint, render with the
 * default values and with three shards + ServiceMonitor + the example, validate every object against the
 * Kubernetes schemas, and check what the chart promises (one shard per pod with its own claim, every sidecar
 * a native sidecar naming every shard, metrics scraped from shards and sidecars, the Grafana dashboard,
 * nothing running as root, values the schema refuses).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHART, FIXTURES, find, flag, helmRefusal, only, renderChart, validateObject, type K8sObject } from './helm-chart.ts';

const THREE_SHARDS = ['-f', join(FIXTURES, 'helm-values-3-shards.yaml'), '--api-versions', 'monitoring.coreos.com/v1'];
const shardUrl = (k: number): string => `http://txmesh-coordinator-${k}.txmesh-coordinator-headless.txmesh.svc:7000`;

/** Pod specs of every workload and bare pod, with where they came from. */
function podSpecs(objects: K8sObject[]): { owner: string; spec: any }[] {
  return objects.flatMap((o) => {
    if (o.kind === 'Pod') return [{ owner: `Pod/${o.metadata.name}`, spec: o.spec }];
    if (o.kind === 'StatefulSet' || o.kind === 'Deployment') return [{ owner: `${o.kind}/${o.metadata.name}`, spec: o.spec.template.spec }];
    return [];
  });
}

function podLabels(objects: K8sObject[]): { owner: string; labels: Record<string, string> }[] {
  return objects.flatMap((o) => {
    if (o.kind === 'Pod') return [{ owner: `Pod/${o.metadata.name}`, labels: o.metadata.labels ?? {} }];
    if (o.kind === 'StatefulSet' || o.kind === 'Deployment') return [{ owner: `${o.kind}/${o.metadata.name}`, labels: o.spec.template.metadata.labels ?? {} }];
    return [];
  });
}

function assertAllValid(objects: K8sObject[]): void {
  const unchecked = new Set<string>();
  for (const obj of objects) {
    if (!validateObject(obj)) unchecked.add(`${obj.apiVersion}/${obj.kind}`);
  }
  // Only custom resources may go without a schema check; each is checked by its own test.
  const custom = new Set(['monitoring.coreos.com/v1/ServiceMonitor', 'monitoring.coreos.com/v1/PodMonitor']);
  assert.ok([...unchecked].every((k) => custom.has(k)), `objects without a schema: ${[...unchecked].join(', ')}`);
}

function assertNonRoot(objects: K8sObject[]): void {
  for (const { owner, spec } of podSpecs(objects)) {
    assert.equal(spec.securityContext?.runAsNonRoot, true, `${owner}: pod runAsNonRoot`);
    assert.equal(spec.automountServiceAccountToken, false, `${owner}: no API token (nothing of txmesh calls the Kubernetes API)`);
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      const sc = c.securityContext ?? {};
      assert.equal(sc.runAsNonRoot, true, `${owner}/${c.name}: runAsNonRoot`);
      assert.ok(sc.runAsUser > 0, `${owner}/${c.name}: runAsUser is not root`);
      assert.equal(sc.readOnlyRootFilesystem, true, `${owner}/${c.name}: readOnlyRootFilesystem`);
      assert.equal(sc.allowPrivilegeEscalation, false, `${owner}/${c.name}: no privilege escalation`);
      assert.deepEqual(sc.capabilities?.drop, ['ALL'], `${owner}/${c.name}: drops ALL capabilities`);
    }
  }
}

function coordinatorOf(objects: K8sObject[]): { sts: K8sObject; args: string[] } {
  const sts = only(objects, 'StatefulSet', 'txmesh-coordinator');
  return { sts, args: sts.spec.template.spec.containers[0].args };
}

describe('helm chart', () => {
  it('passes helm lint --strict', () => {
    const out = helmRefusal(['lint', '--strict', CHART]);
    assert.equal(out.status, 0, out.stderr);
  });

  it('default values: valid objects, one shard with its own claim, no ServiceMonitor without the API', () => {
    const objects = renderChart(['--set', 'serviceMonitor.enabled=true']);
    assertAllValid(objects);
    assertNonRoot(objects);
    const { sts, args } = coordinatorOf(objects);
    assert.equal(sts.spec.replicas, 1);
    assert.equal(flag(args, 'shards'), '1');
    assert.equal(find(objects, 'ServiceMonitor').length + find(objects, 'PodMonitor').length, 0, 'no ServiceMonitor or PodMonitor when monitoring.coreos.com/v1 is absent');
    assert.equal(find(objects, 'Deployment', 'txmesh-injector').length, 1);
  });

  it('three shards: replicas = --shards, shard from the pod ordinal, one claim per pod, headless DNS, PDB, probes, ServiceMonitor', () => {
    const objects = renderChart(THREE_SHARDS);
    assertAllValid(objects);
    assertNonRoot(objects);
    const { sts, args } = coordinatorOf(objects);
    assert.equal(sts.spec.replicas, 3);
    assert.equal(flag(args, 'shards'), String(sts.spec.replicas));
    // The shard index is the ordinal in the pod name, which the downward API hands to the command.
    assert.equal(flag(args, 'shard-from-pod-name'), '$(TXMESH_POD_NAME)');
    const env = sts.spec.template.spec.containers[0].env;
    assert.deepEqual(env.find((e: any) => e.name === 'TXMESH_POD_NAME').valueFrom, { fieldRef: { fieldPath: 'metadata.name' } });
    // One claim template mounted at --data: the StatefulSet makes one PersistentVolumeClaim per pod, so per shard.
    assert.equal(sts.spec.volumeClaimTemplates.length, 1);
    const claim = sts.spec.volumeClaimTemplates[0];
    assert.equal(claim.spec.resources.requests.storage, '5Gi');
    assert.equal(claim.spec.storageClassName, 'fast-ssd');
    const mount = sts.spec.template.spec.containers[0].volumeMounts.find((m: any) => m.name === claim.metadata.name);
    assert.equal(mount.mountPath, flag(args, 'data'));
    assert.ok(!sts.spec.template.spec.volumes.some((v: any) => v.name === claim.metadata.name), 'the claim is not shadowed by a pod volume');

    const headless = only(objects, 'Service', sts.spec.serviceName);
    assert.equal(headless.spec.clusterIP, 'None');
    assert.deepEqual(headless.spec.selector, sts.spec.selector.matchLabels);
    const pdb = only(objects, 'PodDisruptionBudget', 'txmesh-coordinator');
    assert.deepEqual(pdb.spec.selector.matchLabels, sts.spec.selector.matchLabels);
    const container = sts.spec.template.spec.containers[0];
    for (const probe of ['livenessProbe', 'startupProbe']) assert.equal(container[probe].httpGet.path, '/v1/health', probe);
    for (const probe of ['livenessProbe', 'startupProbe', 'readinessProbe']) assert.equal(container[probe].httpGet.port, 'probes', `${probe}: the probe port, not behind the clients`);
    assert.equal(flag(args, 'probe-port'), String(container.ports.find((p: any) => p.name === 'probes').containerPort));
    assert.equal(container.readinessProbe.httpGet.path, '/v1/ready', 'ready after recovery, apart from alive');
    assert.ok(container.resources.requests.cpu && container.resources.limits.memory);
    const spread = sts.spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
    assert.deepEqual([spread.topologyKey, spread.labelSelector.matchLabels], ['kubernetes.io/hostname', sts.spec.selector.matchLabels], 'shards prefer different nodes');

    const monitor = only(objects, 'ServiceMonitor');
    assert.equal(monitor.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(monitor.metadata.labels?.release, 'prometheus');
    const scraped = find(objects, 'Service').filter((s) => Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => s.metadata.labels?.[k] === v));
    assert.ok(scraped.some((s) => s.spec.ports.some((p: any) => p.name === monitor.spec.endpoints[0].port)), 'a selected Service has the scraped port');
  });

  it('metrics: every shard serves /metrics on its metrics port, the sidecar on 9465 (not the app\'s 9464), both scraped', () => {
    const objects = renderChart([...THREE_SHARDS, '--set', 'examples.ecommerce.sidecarMode=template']);
    const { sts, args } = coordinatorOf(objects);
    assert.equal(flag(args, 'metrics-port'), '9464');
    assert.equal(flag(args, 'metrics-host'), '0.0.0.0', 'reachable by Prometheus, not only from inside the pod');
    const coordinatorPort = sts.spec.template.spec.containers[0].ports.find((p: any) => p.name === 'metrics');
    assert.equal(coordinatorPort?.containerPort, 9464);
    const service = only(objects, 'Service', 'txmesh-coordinator');
    assert.deepEqual(service.spec.ports.find((p: any) => p.name === 'metrics'), { name: 'metrics', port: 9464, targetPort: 'metrics', protocol: 'TCP' });

    const sidecar = only(objects, 'StatefulSet', 'txmesh-payment').spec.template.spec.initContainers[0];
    assert.equal(flag(sidecar.args, 'metrics-port'), '9465');
    assert.equal(flag(sidecar.args, 'metrics-host'), '0.0.0.0');
    const sidecarPort = sidecar.ports.find((p: any) => p.name === 'txmesh-metrics');
    assert.equal(sidecarPort?.containerPort, 9465, 'the app in the same pod keeps 9464, the OpenTelemetry Prometheus default');
    const podMonitor = only(objects, 'PodMonitor', 'txmesh-sidecars');
    assert.equal(podMonitor.apiVersion, 'monitoring.coreos.com/v1');
    assert.equal(podMonitor.metadata.labels?.release, 'prometheus');
    assert.deepEqual(podMonitor.spec.podMetricsEndpoints.map((e: any) => [e.port, e.path]), [['txmesh-metrics', '/metrics']], 'scrapes the port the sidecar names');
    assert.deepEqual(podMonitor.spec.namespaceSelector, { any: true });
    const injected = JSON.parse(only(objects, 'ConfigMap', 'txmesh-injector').data['sidecar-template.json']).container;
    assert.equal(injected.ports.find((p: any) => p.name === 'txmesh-metrics')?.containerPort, 9465, 'the injected sidecar is scraped the same way');
    const limited = renderChart([...THREE_SHARDS, '--set', 'serviceMonitor.sidecarNamespaces={shop,billing}']);
    assert.deepEqual(only(limited, 'PodMonitor', 'txmesh-sidecars').spec.namespaceSelector, { matchNames: ['shop', 'billing'] });
  });

  it('OTEL_* from otelEnv reach the coordinator and every sidecar; the Grafana dashboard ships as a ConfigMap', () => {
    const objects = renderChart([...THREE_SHARDS, '--set', 'otelEnv.OTEL_EXPORTER_OTLP_ENDPOINT=http://collector.observability:4318', '--set', 'grafanaDashboard.enabled=true']);
    assertAllValid(objects);
    const endpoint = (env: any[]): string | undefined => env.find((e) => e.name === 'OTEL_EXPORTER_OTLP_ENDPOINT')?.value;
    assert.equal(endpoint(coordinatorOf(objects).sts.spec.template.spec.containers[0].env), 'http://collector.observability:4318');
    const injected = JSON.parse(only(objects, 'ConfigMap', 'txmesh-injector').data['sidecar-template.json']).container;
    assert.equal(endpoint(injected.env), 'http://collector.observability:4318');
    assert.equal(endpoint(coordinatorOf(renderChart(THREE_SHARDS)).sts.spec.template.spec.containers[0].env), undefined, 'no collector unless one is named');

    const dashboard = only(objects, 'ConfigMap', 'txmesh-grafana-dashboard');
    assert.equal(dashboard.metadata.labels?.grafana_dashboard, '1', 'the label Grafana\'s dashboard sidecar looks for');
    assert.deepEqual(JSON.parse(dashboard.data['txmesh.json']), JSON.parse(readFileSync(join(CHART, 'dashboards', 'txmesh.json'), 'utf8')));
    assert.equal(find(renderChart(THREE_SHARDS), 'ConfigMap', 'txmesh-grafana-dashboard').length, 0, 'off by default');
  });

  it('the example: four services, each pod annotated for injection', () => {
    const objects = renderChart(THREE_SHARDS);
    const examples = find(objects, 'StatefulSet').filter((s) => s.metadata.labels?.['app.kubernetes.io/component']?.startsWith('example-'));
    assert.deepEqual(examples.map((s) => s.metadata.name).sort(), ['txmesh-inventory', 'txmesh-order', 'txmesh-payment', 'txmesh-shipping']);
    for (const sts of examples) {
      const annotations = sts.spec.template.metadata.annotations;
      const service = sts.metadata.name.replace('txmesh-', '');
      assert.deepEqual(annotations, { 'txmesh.io/inject': 'true', 'txmesh.io/service': service, 'txmesh.io/app-port': '8080' });
      assert.deepEqual(sts.spec.template.spec.containers[0].args.slice(0, 2), ['service', service], 'runs `txmesh service <name>` from the lab image');
      assert.equal(sts.spec.template.spec.containers[0].image, 'txmesh-lab:0.1.0');
    }
  });

  it('the txmesh.sidecar template: a native sidecar naming every shard, its data volume, probes and resources', () => {
    const objects = renderChart([...THREE_SHARDS, '--set', 'examples.ecommerce.sidecarMode=template']);
    assertAllValid(objects);
    assertNonRoot(objects);
    const examples = find(objects, 'StatefulSet').filter((s) => s.metadata.name !== 'txmesh-coordinator');
    assert.equal(examples.length, 4);
    for (const sts of examples) {
      const spec = sts.spec.template.spec;
      const sidecars = (spec.initContainers ?? []).filter((c: any) => c.name === 'txmesh-sidecar');
      assert.equal(sidecars.length, 1, `${sts.metadata.name}: exactly one sidecar`);
      const sidecar = sidecars[0];
      assert.equal(sidecar.restartPolicy, 'Always', 'a native sidecar');
      assert.equal(spec.containers.filter((c: any) => c.name === 'txmesh-sidecar').length, 0, 'not an ordinary container');
      assert.equal(flag(sidecar.args, 'coordinator'), [0, 1, 2].map(shardUrl).join(','), 'every shard, in shard order');
      assert.equal(flag(sidecar.args, 'service-url'), 'http://127.0.0.1:$(TXMESH_APP_PORT)');
      assert.equal(flag(sidecar.args, 'advertise-url'), 'http://$(TXMESH_POD_IP):7070');
      const env = Object.fromEntries(sidecar.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
      assert.equal(env.TXMESH_SERVICE, sts.metadata.name.replace('txmesh-', ''));
      assert.equal(env.TXMESH_APP_PORT, '8080');
      assert.deepEqual(env.TXMESH_POD_IP, { fieldRef: { fieldPath: 'status.podIP' } });
      assert.equal(sidecar.startupProbe.httpGet.path, '/txmesh/v1/ready', 'the app starts once every shard accepted the sidecar');
      assert.equal(sidecar.readinessProbe.httpGet.path, '/txmesh/v1/ready');
      assert.equal(sidecar.livenessProbe.httpGet.path, '/txmesh/v1/health');
      const probes = sidecar.ports.find((p: any) => p.name === 'txmesh-probes');
      assert.equal(flag(sidecar.args, 'probe-port'), String(probes?.containerPort), 'the sidecar serves its probes on its probe port');
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) assert.equal(sidecar[probe].httpGet.port, 'txmesh-probes', `${probe}: the probe port, not behind the proxied traffic`);
      assert.ok(sidecar.resources.limits.memory);
      const data = spec.volumes.find((v: any) => v.name === 'txmesh-sidecar-data');
      assert.deepEqual(data, { name: 'txmesh-sidecar-data', emptyDir: {} });
      assert.equal(sidecar.volumeMounts[0].mountPath, flag(sidecar.args, 'data'));
      assert.equal(sts.spec.template.metadata.annotations, undefined, 'not also annotated for injection');
    }
  });

  it('the injector: the chart hands it the same sidecar, over TLS, only for pods outside the control plane', () => {
    const objects = renderChart(THREE_SHARDS);
    const template = JSON.parse(only(objects, 'ConfigMap', 'txmesh-injector').data['sidecar-template.json']);
    assert.equal(template.container.restartPolicy, 'Always');
    assert.equal(flag(template.container.args, 'coordinator'), [0, 1, 2].map(shardUrl).join(','));
    const hook = only(objects, 'MutatingWebhookConfiguration').webhooks[0];
    const secret = only(objects, 'Secret', 'txmesh-injector-tls');
    assert.equal(hook.clientConfig.caBundle, secret.data['ca.crt'], 'the webhook trusts the CA that signed the serving certificate');
    assert.match(Buffer.from(secret.data['tls.crt'], 'base64').toString(), /BEGIN CERTIFICATE/);
    assert.deepEqual(hook.rules[0].resources, ['pods']);
    assert.deepEqual(hook.objectSelector.matchExpressions, [{ key: 'txmesh.io/control-plane', operator: 'DoesNotExist' }]);
    // txmesh's own pods skip the webhook (it must not wait for itself); the example's pods go through it.
    for (const { owner, labels } of podLabels(objects)) {
      const example = /^StatefulSet\/txmesh-(inventory|payment|order|shipping)$/.test(owner);
      assert.equal(labels['txmesh.io/control-plane'], example ? undefined : 'true', owner);
    }
    const certManager = renderChart([...THREE_SHARDS, '--set', 'injector.tls.certManager.enabled=true']);
    assert.equal(find(certManager, 'Secret').filter((s) => s.metadata.name === 'txmesh-injector-tls').length, 0, 'cert-manager writes the secret');
    assert.equal(only(certManager, 'Certificate').spec.secretName, 'txmesh-injector-tls');
    assert.equal(only(certManager, 'MutatingWebhookConfiguration').metadata.annotations?.['cert-manager.io/inject-ca-from'], 'txmesh/txmesh-injector');
  });

  it('an app chart includes txmesh.sidecar from the txmesh chart as a dependency, naming another release\'s shards', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'txmesh-app-chart-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    cpSync(join(FIXTURES, 'app-chart'), dir, { recursive: true });
    const chartYaml = join(dir, 'Chart.yaml');
    writeFileSync(chartYaml, readFileSync(chartYaml, 'utf8').replace(/file:\/\/\S+/, `file://${CHART}`));
    const deps = helmRefusal(['dependency', 'update', dir]);
    assert.equal(deps.status, 0, deps.stderr);

    const objects = renderChart([], dir);
    assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`), ['Deployment/txmesh'], 'the dependency renders nothing of its own');
    assertAllValid(objects);
    const spec = objects[0]!.spec.template.spec;
    const [sidecar, ...more] = spec.initContainers;
    assert.equal(more.length, 0);
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.equal(sidecar.image, 'txmesh:0.1.0');
    assert.equal(flag(sidecar.args, 'coordinator'), [0, 1, 2].map(shardUrl).join(','), 'the txmesh release\'s shards, in its namespace');
    assert.deepEqual(spec.volumes, [
      { name: 'txmesh-sidecar-data', emptyDir: {} },
      { name: 'txmesh-service-key', secret: { secretName: 'txmesh-key-payment', defaultMode: 0o440 } },
    ], 'its data volume, and its key from the Secret named after the service');
    assert.equal(flag(sidecar.args, 'key-file'), '/etc/txmesh/service-key/service.key');

    const unnamed = helmRefusal(['template', 'payment', dir, '--set', 'txmesh.sidecar.coordinator.fullname=']);
    assert.notEqual(unnamed.status, 0);
    assert.match(unnamed.stderr, /set txmesh\.sidecar\.coordinator\.fullname/);
  });

  it('credentials: the shards verify with a generated cluster secret, every sidecar and example app holds its service key; off says --insecure', () => {
    const objects = renderChart([...THREE_SHARDS, '--set', 'examples.ecommerce.sidecarMode=template']);
    const secret = only(objects, 'Secret', 'txmesh-cluster-secret');
    assert.match(Buffer.from(secret.data['cluster.secret'], 'base64').toString(), /^[0-9a-f]{64}\n$/, 'a key `txmesh credentials` can derive from');
    assert.equal(secret.metadata.annotations?.['helm.sh/resource-policy'], 'keep', 'every service key derives from it: an uninstall keeps it');
    const { sts, args } = coordinatorOf(objects);
    assert.equal(flag(args, 'secret-file'), '/etc/txmesh/credentials/cluster.secret');
    assert.ok(!args.includes('--insecure'));
    const shard = sts.spec.template.spec;
    assert.deepEqual(shard.volumes.find((v: any) => v.name === 'credentials').secret, { secretName: 'txmesh-cluster-secret', defaultMode: 0o440 });
    assert.deepEqual(shard.containers[0].volumeMounts.find((m: any) => m.name === 'credentials'), { name: 'credentials', mountPath: '/etc/txmesh/credentials', readOnly: true });
    for (const example of find(objects, 'StatefulSet').filter((s) => s.metadata.name !== 'txmesh-coordinator')) {
      const service = example.metadata.name.replace('txmesh-', '');
      const spec = example.spec.template.spec;
      const keySecrets = spec.volumes.filter((v: any) => v.secret?.secretName === `txmesh-key-${service}`).map((v: any) => v.name).sort();
      assert.deepEqual(keySecrets, ['service-key', 'txmesh-service-key'], `${service}: the app and its sidecar mount the service's own key Secret`);
      assert.equal(flag(spec.initContainers[0].args, 'key-file'), '/etc/txmesh/service-key/service.key');
      assert.equal(flag(spec.containers[0].args, 'key-file'), '/etc/txmesh/service-key/service.key', 'its participant routes take only its sidecar');
    }
    const template = JSON.parse(only(objects, 'ConfigMap', 'txmesh-injector').data['sidecar-template.json']);
    assert.deepEqual(template.keyVolume, { name: 'txmesh-service-key', secret: { secretName: 'txmesh-key-', defaultMode: 0o440 } }, 'the injector appends the service name');

    const own = renderChart(['--set', 'credentials.existingSecret=my-secret']);
    assert.equal(find(own, 'Secret').filter((s) => s.metadata.name.endsWith('cluster-secret')).length, 0, 'an existing Secret is used, not made');
    assert.equal(coordinatorOf(own).sts.spec.template.spec.volumes.find((v: any) => v.name === 'credentials').secret.secretName, 'my-secret');

    const open = renderChart([...THREE_SHARDS, '--set', 'credentials.enabled=false', '--set', 'examples.ecommerce.sidecarMode=template']);
    assertAllValid(open);
    assert.ok(coordinatorOf(open).args.includes('--insecure'), 'said explicitly, and logged by the shard');
    for (const example of find(open, 'StatefulSet').filter((s) => s.metadata.name !== 'txmesh-coordinator')) {
      assert.ok(example.spec.template.spec.initContainers[0].args.includes('--insecure'));
      assert.equal(flag(example.spec.template.spec.containers[0].args, 'key-file'), undefined);
    }
    assert.equal(find(open, 'Secret').filter((s) => s.metadata.name === 'txmesh-cluster-secret').length, 0);
  });

  it('helm test hook: a pod that checks every shard under its DNS name', () => {
    const objects = renderChart(THREE_SHARDS);
    const hooks = find(objects, 'Pod').filter((p) => p.metadata.annotations?.['helm.sh/hook'] === 'test');
    assert.equal(hooks.length, 1);
    const container = hooks[0]!.spec.containers[0];
    assert.equal(container.env.find((e: any) => e.name === 'TXMESH_SHARD_URLS').value, [0, 1, 2].map(shardUrl).join(','));
    assert.equal(hooks[0]!.spec.restartPolicy, 'Never');
  });

  it('refuses bad values through values.schema.json', () => {
    const refused: [string[], RegExp][] = [
      [['--set', 'coordinator.shards=0'], /coordinator\/shards/],
      [['--set', 'securityContext.runAsUser=0'], /runAsUser/],
      [['--set', 'injector.failurePolicy=Sometimes'], /failurePolicy/],
      [['--set', 'examples.ecommerce.sidecarMode=maybe'], /sidecarMode/],
      [['--set', 'coordinator.extraArgs[0]=oops'], /extraArgs/],
      [['--set', 'coordinatorr.shards=3'], /coordinatorr/],
      [['--set', 'otelEnv.NODE_OPTIONS=--inspect'], /OTEL_/],
      [['--set', 'sidecar.metricsPort=7070'], /sidecar\.metricsPort must differ from sidecar\.port/],
      [['--set', 'sidecar.probePort=9465'], /sidecar\.probePort must differ from sidecar\.port and sidecar\.metricsPort/],
      [['--set', 'credentials.serviceKeySecretPrefix=Keys_'], /serviceKeySecretPrefix/],
    ];
    for (const [args, message] of refused) {
      const out = helmRefusal(['template', 'txmesh', CHART, ...args]);
      assert.notEqual(out.status, 0, `${args.join(' ')} must be refused`);
      assert.match(out.stderr, message);
    }
  });
});
