// What a request costs a process that was asleep, against one that is kept busy (a probe for
// docs/benchmarks.md, not part of the product): a fastify null endpoint in a child process, N requests on one
// kept-alive connection, back to back and then GAP ms apart; the child's CPU per request from /proc.
//   node scripts/probes/wake-cost.mjs [N=300] [GAP=10]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';

const count = Number(process.argv[2] ?? 300);
const gapMs = Number(process.argv[3] ?? 10);
const SERVER = `
  const app = (await import('fastify')).default();
  app.post('/echo', async (req) => ({ ok: true, n: req.body?.n ?? null }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  process.stdout.write(String(app.server.address().port) + '\\n');
`;
const child = spawn(process.execPath, ['--input-type=module', '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((resolve) => child.stdout.once('data', (chunk) => resolve(Number(String(chunk).trim()))));
const ticksMs = 10; // USER_HZ is 100 on Linux
const cpuMs = () => {
  const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * ticksMs;
};
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const post = (n) =>
  new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/echo', method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end(JSON.stringify({ n }));
  });
const run = async (gap) => {
  const before = cpuMs();
  const walls = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await post(i);
    walls.push(performance.now() - t0);
    if (gap > 0) await new Promise((resolve) => setTimeout(resolve, gap));
  }
  walls.sort((a, b) => a - b);
  return { gapMs: gap, wallP50Ms: Number(walls[walls.length >> 1].toFixed(3)), serverCpuMsPerRequest: Number(((cpuMs() - before) / count).toFixed(3)) };
};
for (let i = 0; i < 2000; i++) await post(i); // warm: the code is optimised before either run
const result = { backToBack: await run(0), paced: await run(gapMs) };
console.log(JSON.stringify(result));
agent.destroy();
child.kill();
