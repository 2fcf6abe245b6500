/**
 * The Kubernetes side of the injector: an AdmissionReview (admission.k8s.io/v1) in, an AdmissionReview with
 * the response out. A pod that asks for a sidecar with unusable annotations is refused (allowed: false) with
 * our catalogue code in the message, so `kubectl` shows the person what to fix; a body that is not an
 * AdmissionReview is a TxmeshError for the HTTP layer.
 */
import { TxmeshError } from '@txmesh/protocol';
import { injectionPatch } from './pod-patch.ts';
import type { SidecarTemplate } from './sidecar-template.ts';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  status?: { code: number; message: string };
}

export interface AdmissionReviewAnswer {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function bad(details: string): never {
  throw new TxmeshError('TXM_BAD_REQUEST', details);
}

export function reviewAdmission(body: unknown, template: SidecarTemplate): AdmissionReviewAnswer {
  if (!isRecord(body) || body.kind !== 'AdmissionReview' || body.apiVersion !== ADMISSION_API_VERSION) bad(`the body must be an AdmissionReview of ${ADMISSION_API_VERSION}`);
  const request = body.request;
  if (!isRecord(request) || typeof request.uid !== 'string' || request.uid === '') bad('request.uid must be a string');
  const answer = (response: Omit<AdmissionResponse, 'uid'>): AdmissionReviewAnswer => ({ apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response: { uid: request.uid as string, ...response } });

  // Only pods are patched; anything else the webhook is (mis)configured to send passes unchanged.
  const kind = request.kind;
  if (!isRecord(kind) || kind.kind !== 'Pod' || !isRecord(request.object)) return answer({ allowed: true });
  try {
    const patch = injectionPatch(request.object, template);
    if (patch.length === 0) return answer({ allowed: true });
    return answer({ allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') });
  } catch (err) {
    if (!(err instanceof TxmeshError)) throw err;
    return answer({ allowed: false, status: { code: err.status, message: `${err.code}: ${err.message}` } });
  }
}
