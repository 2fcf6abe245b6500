/**
 * The sidecar container the injector adds to a pod, as the chart rendered it (template "txmesh.sidecar.injected",
 * mounted from a ConfigMap). The chart is the one place that shapes the container; the injector only fills in
 * the values that come from the pod's annotations: the service and the app port, through the container's env
 * (TXMESH_SERVICE and TXMESH_APP_PORT, which its args reference as $(TXMESH_SERVICE) and $(TXMESH_APP_PORT)),
 * and, when the chart wires credentials, the name of the Secret that holds that service's key (the key
 * volume's secretName is the chart's prefix; the injector appends the service name).
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
  /** The volume of the service's key, when credentials are on: `secret.secretName` is the prefix of the Secret's name. */
  keyVolume?: KeyVolume;
}

export interface KeyVolume {
  name: string;
  secret: { secretName: string; [field: string]: unknown };
  [field: string]: unknown;
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
  if (value.keyVolume !== undefined) {
    const key = value.keyVolume;
    if (!isRecord(key) || typeof key.name !== 'string' || key.name === '' || !isRecord(key.secret) || typeof key.secret.secretName !== 'string') {
      throw new SidecarTemplateError('keyVolume must be {name, secret: {secretName}} (secretName: the prefix of each service key Secret)');
    }
    if (!mounts.some((m) => isRecord(m) && m.name === key.name)) throw new SidecarTemplateError(`container.volumeMounts must mount the key volume "${key.name}"`);
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
