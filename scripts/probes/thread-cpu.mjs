// Where a bench's members spend their CPU by thread (a probe for docs/benchmarks.md, issue 15; not part of the product):
// a CPU profile and the GC's pause times see the main thread only, while process CPU (what `txmesh bench` reports per
// member) also counts V8's helper threads (parallel scavenges, concurrent marking and sweeping, the compiler) and
// libuv's pool. Run beside a bench; every second it reads /proc/<pid>/task/<tid>/stat of each node process whose
// command line contains MATCH, and when those processes are gone it prints, per pid, the CPU ms of its threads summed
// by thread name (the last reading before the process ended).
//   node scripts/probes/thread-cpu.mjs <MATCH> > threads.json &
//   node packages/cli/bin/txmesh.mjs bench --telemetry ... --json > bench.json
// Then, by mode and role (the bench's `telemetry.<mode>.windows[0].pids` name each cluster's members):
//   node scripts/probes/thread-cpu.mjs join threads.json bench.json
// Linux only.
import { readFileSync, readdirSync } from 'node:fs';

if (process.argv[2] === 'join') {
  const threads = JSON.parse(readFileSync(process.argv[3], 'utf8'));
  const telemetry = JSON.parse(readFileSync(process.argv[4], 'utf8')).telemetry;
  for (const mode of ['metrics', 'noSdk', 'otlp']) {
    const roles = {};
    for (const [member, pid] of Object.entries(telemetry[mode].windows[0].pids)) {
      const role = (roles[member.split('-')[0]] ??= { main: 0, other: 0 });
      for (const [name, ms] of Object.entries(threads[String(pid)]?.byName ?? {})) role[name === 'main' ? 'main' : 'other'] += ms;
    }
    for (const [role, { main, other }] of Object.entries(roles)) console.log(JSON.stringify({ mode, role, mainMs: main, otherMs: other, otherShare: Math.round((other / (main + other)) * 1000) / 1000 }));
  }
  process.exit(0);
}

const match = process.argv[2];
if (!match) {
  console.error('usage: thread-cpu.mjs <text every member command line contains>');
  process.exit(2);
}
const TICK_MS = 1000 / 100; // USER_HZ

const last = new Map();
let seen = false;

function read(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function sample() {
  let alive = 0;
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    const cmdline = read(`/proc/${pid}/cmdline`);
    if (cmdline === undefined || !cmdline.includes(match) || !cmdline.includes('node')) continue;
    if (Number(pid) === process.pid) continue;
    let tids;
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    const byName = {};
    for (const tid of tids) {
      const stat = read(`/proc/${pid}/task/${tid}/stat`);
      if (stat === undefined) continue;
      const name = tid === pid ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ms = (Number(fields[11]) + Number(fields[12])) * TICK_MS;
      byName[name] = (byName[name] ?? 0) + ms;
    }
    alive += 1;
    last.set(pid, { args: cmdline.split('\0').slice(1, 4).join(' '), byName });
  }
  if (alive > 0) seen = true;
  return alive;
}

const timer = setInterval(() => {
  if (sample() === 0 && seen) {
    clearInterval(timer);
    process.stdout.write(`${JSON.stringify(Object.fromEntries(last), null, 1)}\n`);
  }
}, 1000);
