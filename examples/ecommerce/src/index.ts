export { ECOMMERCE_SERVICES, type EcommerceService, type ServiceSummary } from './service-definition.ts';
export { DEFAULT_CATALOG, resolveCatalog, type CatalogOptions } from './catalog.ts';
export {
  buildEcommerceService,
  startEcommerceService,
  isEcommerceService,
  slowFromEnv,
  type SlowServiceOptions,
  type BuildServiceOptions,
  type StartServiceOptions,
} from './app.ts';
export { orderRequest, randomOrder, seededRandom, type OrderInput } from './order-workload.ts';
// buildPgPaymentService (app-pg.ts) is reached through startEcommerceService({ pgUrl }), which loads it on demand.
export type { BuildPgPaymentOptions } from './app-pg.ts';
