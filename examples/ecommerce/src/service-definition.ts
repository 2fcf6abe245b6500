/**
 * What each of the four example services provides to the shared app builder: its schema and seed, its
 * transactional operations, its invariant checks and its ordinary business routes.
 */
import type Database from 'better-sqlite3';
import type { FastifyInstance } from 'fastify';
import type { OperationHandlers } from '@txmesh/participant-sdk';
import type { CatalogOptions } from './catalog.ts';

export const ECOMMERCE_SERVICES = ['inventory', 'payment', 'order', 'shipping'] as const;
export type EcommerceService = (typeof ECOMMERCE_SERVICES)[number];

export interface ServiceSummary {
  service: EcommerceService;
  /** txIds whose branch committed here, sorted. */
  committedTxIds: string[];
  /** Branches prepared here and still waiting for the outcome. */
  preparedBranches: number;
  invariants: Record<string, number>;
  ok: boolean;
  problems: string[];
}

/** The service-specific part of a summary; the app builder adds service, preparedBranches and ok. */
export interface ServiceCheck {
  committedTxIds: string[];
  invariants: Record<string, number>;
  problems: string[];
}

export interface ServiceDefinition {
  /** Creates the business tables; seeds them only when the database is new. */
  migrate(db: Database.Database, catalog: CatalogOptions): void;
  operations: Record<string, OperationHandlers<any>>;
  /** Checks the service's invariants against its rows and the SDK's prepared-undecided branches. */
  check(db: Database.Database, preparedTxIds: ReadonlySet<string>): ServiceCheck;
  /** Ordinary business routes (what a sidecar proxies). */
  routes(app: FastifyInstance, db: Database.Database): void;
}
