// Per-function self time of one role in two sets of V8 CPU profiles, and what the second adds over the first.
// The profiles are a telemetry bench's: TXMESH_PROFILE_DIR=<dir> node packages/cli/bin/txmesh.mjs bench --telemetry ...
// writes one directory per mode (<dir>/metrics, <dir>/otlp, ...), one profile per member.
//   node scripts/probes/profile-diff.mjs <dir>/metrics <dir>/otlp sidecar|service|coordinator [top=25]
// Roles are told apart by what the profile ran: the lab's services start from txmesh-lab.mjs, a sidecar ran
// withBatchSpan, anything else started from txmesh.mjs is the coordinator. Self times are summed over the
// profiles of the role (idle left out), in ms over the whole run: warm-up and start-up included.
import { readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';

const [before, after, role, top = '25'] = process.argv.slice(2);
if (!before || !after || !role) {
  console.error('usage: profile-diff.mjs <profiles before> <profiles after> <sidecar|service|coordinator> [top]');
  process.exit(2);
}

function roleOf(profile) {
  if (profile.nodes.some((n) => n.callFrame.url.endsWith('txmesh-lab.mjs'))) return 'service';
  if (profile.nodes.some((n) => n.callFrame.functionName === 'withBatchSpan')) return 'sidecar';
  return 'coordinator';
}

function selfTimes(dir) {
  const byFunction = new Map();
  let profiles = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    if (roleOf(profile) !== role) continue;
    profiles += 1;
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    for (let i = 0; i < profile.samples.length; i++) {
      const frame = nodes.get(profile.samples[i]).callFrame;
      if (frame.functionName === '(idle)') continue;
      const key = `${frame.functionName || '(anonymous)'} ${basename(frame.url)}:${frame.lineNumber}`;
      byFunction.set(key, (byFunction.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
    }
  }
  return { byFunction, profiles };
}

const a = selfTimes(before);
const b = selfTimes(after);
const total = (m) => [...m.values()].reduce((s, v) => s + v, 0);
const rows = [...new Set([...a.byFunction.keys(), ...b.byFunction.keys()])]
  .map((key) => ({ key, before: a.byFunction.get(key) ?? 0, after: b.byFunction.get(key) ?? 0 }))
  .map((r) => ({ ...r, added: r.after - r.before }))
  .sort((x, y) => y.added - x.added)
  .slice(0, Number(top));
console.log(JSON.stringify({
  role,
  profiles: { before: a.profiles, after: b.profiles },
  busyMs: { before: Math.round(total(a.byFunction)), after: Math.round(total(b.byFunction)) },
  mostAdded: rows.map((r) => ({ fn: r.key, beforeMs: Math.round(r.before), afterMs: Math.round(r.after), addedMs: Math.round(r.added) })),
}, null, 1));
