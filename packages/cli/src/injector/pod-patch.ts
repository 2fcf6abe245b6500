/**
 * What the injector does to one pod: the JSONPatch (RFC 6902) that adds the sidecar as a native sidecar
 * (first init container, restartPolicy: Always) with its data volume, or no patch at all when the pod does
 * not ask for one or already has one.
 */
import { TxmeshError, isValidName } from '@txmesh/protocol';
import { APP_PORT_ENV, SERVICE_ENV, SIDECAR_CONTAINER_NAME, type KeyVolume, type SidecarTemplate } from './sidecar-template.ts';

export const Annotations = {
  INJECT: 'txmesh.io/inject',
  SERVICE: 'txmesh.io/service',
  APP_PORT: 'txmesh.io/app-port',
  /** Set by the injector on the pods it patched, so an operator can see it happened. */
  STATUS: 'txmesh.io/status',
} as const;

export interface JsonPatchOp {
  op: 'add';
  path: string;
  value: unknown;
}

interface PodLike {
  metadata?: { annotations?: Record<string, string> };
  spec?: { initContainers?: { name?: string }[]; containers?: { name?: string }[]; volumes?: { name?: string }[] };
}

/** JSON Pointer escaping of one path segment (RFC 6901). */
function pointerSegment(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1');
}

function hasSidecar(pod: PodLike): boolean {
  const named = (list: { name?: string }[] | undefined): boolean => (list ?? []).some((c) => c.name === SIDECAR_CONTAINER_NAME);
  return named(pod.spec?.initContainers) || named(pod.spec?.containers);
}

/** The service name and app port the annotations ask for; TXM_BAD_INJECTION when they are not usable. */
export function requestedSidecar(annotations: Record<string, string>): { service: string; appPort: number } {
  const service = annotations[Annotations.SERVICE];
  if (!isValidName(service)) {
    throw new TxmeshError('TXM_BAD_INJECTION', `${Annotations.SERVICE} must be a name of letters, digits, . _ - (1-63 chars), got ${JSON.stringify(service ?? null)}`);
  }
  const rawPort = annotations[Annotations.APP_PORT];
  const appPort = Number(rawPort);
  if (rawPort === undefined || !/^[0-9]+$/.test(rawPort) || appPort < 1 || appPort > 65535) {
    throw new TxmeshError('TXM_BAD_INJECTION', `${Annotations.APP_PORT} must be a port number from 1 to 65535, got ${JSON.stringify(rawPort ?? null)}`);
  }
  return { service, appPort };
}

/** The sidecar container for this service and port: the template with its two env values filled in. */
function sidecarFor(template: SidecarTemplate, service: string, appPort: number): SidecarTemplate['container'] {
  const container = structuredClone(template.container);
  container.env = container.env.map((e) => {
    if (e.name === SERVICE_ENV) return { name: e.name, value: service };
    if (e.name === APP_PORT_ENV) return { name: e.name, value: String(appPort) };
    return e;
  });
  return container;
}

/** The ports the sidecar listens on in the pod (proxy, metrics, probes): the app cannot have one of them. */
function sidecarPorts(template: SidecarTemplate): number[] {
  const ports = template.container.ports;
  if (!Array.isArray(ports)) return [];
  return ports.map((p: unknown) => (p as { containerPort?: unknown }).containerPort).filter((port): port is number => typeof port === 'number');
}

function keyVolumeFor(template: KeyVolume, service: string): KeyVolume {
  return { ...template, secret: { ...template.secret, secretName: `${template.secret.secretName}${service}` } };
}

/** The patch for `pod`: empty when it is not annotated for injection or already carries the sidecar. */
export function injectionPatch(pod: PodLike, template: SidecarTemplate): JsonPatchOp[] {
  const annotations = pod.metadata?.annotations ?? {};
  if (annotations[Annotations.INJECT] !== 'true') return [];
  if (hasSidecar(pod)) return [];
  const { service, appPort } = requestedSidecar(annotations);
  if (!pod.spec) throw new TxmeshError('TXM_BAD_REQUEST', 'the pod has no spec');

  // Two listeners on one port in one pod: the second would fail to start, or the probes would reach the app.
  if (sidecarPorts(template).includes(appPort)) {
    throw new TxmeshError('TXM_BAD_INJECTION', `${Annotations.APP_PORT} ${appPort} is a port of the txmesh sidecar (${sidecarPorts(template).join(', ')}): move the app or the sidecar's ports`);
  }
  const ops: JsonPatchOp[] = [];
  const container = sidecarFor(template, service, appPort);
  // First among the init containers: a native sidecar is started before the init containers after it, so
  // the app's own init steps can already reach the coordinator through it.
  if (pod.spec.initContainers === undefined) ops.push({ op: 'add', path: '/spec/initContainers', value: [container] });
  else ops.push({ op: 'add', path: '/spec/initContainers/0', value: container });

  // A pod that brings its own volume of that name (a StatefulSet's volumeClaimTemplate) keeps it: the PVC option.
  const volumes = pod.spec.volumes;
  const added = volumes?.some((v) => v.name === template.volume.name) ? [] : [template.volume];
  // The service's key comes from its own Secret (<prefix><service>), which the operator creates from
  // `txmesh credentials service <service>`; a missing Secret keeps the pod from starting, and says why.
  if (template.keyVolume) added.push(keyVolumeFor(template.keyVolume, service));
  if (volumes === undefined) ops.push({ op: 'add', path: '/spec/volumes', value: added });
  else for (const volume of added) ops.push({ op: 'add', path: '/spec/volumes/-', value: volume });

  // The pod has annotations: it was asked for injection through one.
  ops.push({ op: 'add', path: `/metadata/annotations/${pointerSegment(Annotations.STATUS)}`, value: 'injected' });
  return ops;
}
