/**
 * GET /dashboard (the live page) and GET /dashboard/data (what it draws, as JSON): the registry's view
 * of every service, totals, the last minutes of activity and the branches in doubt.
 */
import type { FastifyInstance } from 'fastify';
import type { InDoubtBranch, ServiceView } from '@txmesh/protocol';
import type { ManagerStats } from '../transaction-manager.ts';
import { DASHBOARD_DATA_PATH, DASHBOARD_HTML } from './dashboard-page.ts';
import type { ActivitySnapshot, RecentActivity } from './recent-activity.ts';

export const DASHBOARD_PATH = '/dashboard';
/** In-doubt branches listed on the page, oldest first. */
const IN_DOUBT_SHOWN = 50;

export interface DashboardSource {
  readonly shard: number;
  readonly shards: number;
  stats(): ManagerStats;
  listServices(): ServiceView[];
  inDoubt(): InDoubtBranch[];
}

export interface DashboardData {
  shard: number;
  shards: number;
  now: number;
  totals: { committed: number; aborted: number; inFlight: number; inDoubt: number; refusedOverloaded: number };
  services: ServiceView[];
  activity: ActivitySnapshot;
  inDoubt: InDoubtBranch[];
}

export function dashboardData(source: DashboardSource, activity: RecentActivity, now: number = Date.now()): DashboardData {
  const stats = source.stats();
  const inDoubt = source.inDoubt();
  return {
    shard: source.shard,
    shards: source.shards,
    now,
    totals: { committed: stats.committed, aborted: stats.aborted, inFlight: stats.inFlight, inDoubt: inDoubt.length, refusedOverloaded: stats.refusedOverloaded },
    services: source.listServices().sort((a, b) => a.service.localeCompare(b.service)),
    activity: activity.snapshot(now),
    inDoubt: inDoubt.slice(0, IN_DOUBT_SHOWN),
  };
}

export function registerDashboardRoutes(app: FastifyInstance, source: DashboardSource, activity: RecentActivity): void {
  app.get(DASHBOARD_PATH, async (_request, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(DASHBOARD_HTML));
  app.get(DASHBOARD_DATA_PATH, async (_request, reply) => reply.header('cache-control', 'no-store').send(dashboardData(source, activity)));
}
