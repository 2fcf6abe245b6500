/**
 * The chart under test: renders helm/txmesh with the real helm (scripts/test-tools/helm.sh), parses every
 * object, and validates each against the Kubernetes schemas (kubernetes-models). Custom resources the
 * models do not know (ServiceMonitor, cert-manager's) are checked by the tests themselves.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Pod, Secret, Service } from 'kubernetes-models/v1';
import { ensureTestTool } from './tools.ts';

export const CHART = fileURLToPath(new URL('../../helm/txmesh', import.meta.url));
export const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));

/** A rendered Kubernetes object, loosely typed: tests read the fields they check. */
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; annotations?: Record<string, string>; labels?: Record<string, string> }; spec?: any; data?: any; webhooks?: any };

type Model = new (data: any) => { validate(): void };
const MODELS: Record<string, Model> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Pod': Pod,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': MutatingWebhookConfiguration,
};

export function helm(): string {
  return ensureTestTool('helm');
}

/** `helm template` output as objects; throws with helm's stderr when it refuses. */
export function renderChart(args: string[] = [], chart = CHART): K8sObject[] {
  const out = execFileSync(helm(), ['template', 'txmesh', chart, '--namespace', 'txmesh', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  return parseAllDocuments(out)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`helm rendered invalid YAML: ${doc.errors[0]!.message}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** Runs helm and returns its exit status and stderr, for values the chart must refuse. */
export function helmRefusal(args: string[]): { status: number | null; stderr: string } {
  const result = spawnSync(helm(), args, { encoding: 'utf8' });
  return { status: result.status, stderr: result.stderr };
}

/** Validates an object against its Kubernetes schema; returns false for kinds the models do not cover. */
export function validateObject(obj: K8sObject): boolean {
  const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!Model) return false;
  new Model(obj).validate();
  return true;
}

export function find(objects: K8sObject[], kind: string, name?: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
}

export function only(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = find(objects, kind, name);
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

/** The value of `--name=value` in a container's args. */
export function flag(args: string[] | undefined, name: string): string | undefined {
  const prefix = `--${name}=`;
  return args?.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}
