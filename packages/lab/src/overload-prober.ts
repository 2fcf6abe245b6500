/**
 * The prober of `txmesh bench-overload`, as its own process: it asks each probe URL on a fresh connection
 * every interval (as a kubelet does) until the deadline, then prints the latencies as one JSON line. Apart
 * from the load generator, so its timings are the server's and not those of a process busy with 4000 clients.
 * argv: <deadline epoch ms> <interval ms> <url>...
 */
import http from 'node:http';

function probe(url: string): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 30_000 }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', reject);
  });
}

const [deadline, interval, ...urls] = process.argv.slice(2);
const stopAt = Number(deadline);
const everyMs = Number(interval);
const latencies: number[] = [];
let failed = 0;
while (Date.now() < stopAt) {
  const tick = new Promise((resolve) => setTimeout(resolve, everyMs));
  for (const url of urls) {
    try {
      latencies.push(await probe(url));
    } catch {
      failed += 1;
    }
  }
  await tick;
}
process.stdout.write(`${JSON.stringify({ latencies, failed })}\n`);
