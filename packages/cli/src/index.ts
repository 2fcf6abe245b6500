export { main } from './main.ts';
// Not telemetry.ts itself: importing this package must not load an OpenTelemetry SDK (serve loads it).
export { telemetryFlags, tracingRequested, DEFAULT_METRICS_PORT, METRICS_PREFIX, type TelemetryOptions } from './telemetry-options.ts';
export { FlagReader, parseArgs, UsageError, type ParsedArgs } from './args.ts';
export { serve, envSwitch, READY_PREFIX, DEFAULT_READY_TIMEOUT_MS, type Closable, type ServeOptions } from './serve.ts';
export { runClientCommand, CLIENT_COMMANDS, EXIT_ABORTED, type CommandIo } from './client-commands.ts';
export { buildInjector, startInjector, InjectorPaths, type InjectorOptions, type InjectorTls } from './injector/injector-server.ts';
export { reviewAdmission, ADMISSION_API_VERSION, type AdmissionResponse, type AdmissionReviewAnswer } from './injector/admission-review.ts';
export { injectionPatch, requestedSidecar, Annotations, type JsonPatchOp } from './injector/pod-patch.ts';
export {
  loadSidecarTemplate,
  validateSidecarTemplate,
  SidecarTemplateError,
  SIDECAR_CONTAINER_NAME,
  SERVICE_ENV,
  APP_PORT_ENV,
  type SidecarTemplate,
  type SidecarContainer,
} from './injector/sidecar-template.ts';
export { shardFromPodName } from './shard-from-pod-name.ts';
export { awaitReady } from './await-ready.ts';
