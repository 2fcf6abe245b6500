/**
 * The sidecar container the injector adds to a pod, as the chart rendered it (template "txmesh.sidecar.injected",
 * mounted from a ConfigMap). The chart is the one place that shapes the container; the injector only fills in
 * the two values that come from the pod's annotations, through the container's env (TXMESH_SERVICE and
 * TXMESH_APP_PORT, which its args reference as $(TXMESH_SERVICE) and $(TXMESH_APP_PORT)).
 */
import { readFileSync } from 'node:fs';

export const SIDECAR_CONTAINER_NAME = 'txmesh-sidecar';
export const SERVICE_ENV = 'TXMESH_SERVICE';
export const APP_PORT_ENV = 'TXMESH_APP_PORT';

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}

export interface SidecarContainer {
  name: string;
  env: EnvVar[];
  volumeMounts: { name: string; mountPath: string }[];
  [field: string]: unknown;
}

export interface SidecarTemplate {
  container: SidecarContainer;
  /** The pod volume that holds the sidecar's data, added unless the pod already has one of that name (a PVC). */
  volume: { name: string; [field: string]: unknown };
}

export class SidecarTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SidecarTemplateError';
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks the shape the injector relies on, so a broken ConfigMap stops the injector at start, not at a pod. */
export function validateSidecarTemplate(value: unknown): SidecarTemplate {
  if (!isRecord(value) || !isRecord(value.container) || !isRecord(value.volume)) {
    throw new SidecarTemplateError('the sidecar template must be an object with "container" and "volume" objects');
  }
  const { container, volume } = value;
  if (container.name !== SIDECAR_CONTAINER_NAME) throw new SidecarTemplateError(`the sidecar container must be named "${SIDECAR_CONTAINER_NAME}"`);
  if (container.restartPolicy !== 'Always') throw new SidecarTemplateError('the sidecar container must be a native sidecar (restartPolicy: Always)');
  const env = container.env;
  if (!Array.isArray(env) || !env.every((e) => isRecord(e) && typeof e.name === 'string')) throw new SidecarTemplateError('container.env must be a list of {name, ...}');
  for (const needed of [SERVICE_ENV, APP_PORT_ENV]) {
    if (!env.some((e) => (e as EnvVar).name === needed)) throw new SidecarTemplateError(`container.env must declare ${needed}`);
  }
  if (typeof volume.name !== 'string' || volume.name === '') throw new SidecarTemplateError('volume.name must be a string');
  const mounts = container.volumeMounts;
  if (!Array.isArray(mounts) || !mounts.some((m) => isRecord(m) && m.name === volume.name)) {
    throw new SidecarTemplateError(`container.volumeMounts must mount the volume "${volume.name}"`);
  }
  return value as unknown as SidecarTemplate;
}

export function loadSidecarTemplate(path: string): SidecarTemplate {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new SidecarTemplateError(`cannot read the sidecar template ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return validateSidecarTemplate(parsed);
}
