/**
 * The prober of `txmesh bench-overload`, as its own process: it asks each probe URL on a fresh connection
 * every interval (as a kubelet does) until the deadline, then prints the latencies as one JSON line. Apart
 * from the load generator, so its timings are the server's and not those of a process busy with 4000 clients.
 * argv: <deadline epoch ms> <interval ms> <url>...
 */
import http from 'node:http';

/** A probe's latency, or why it failed: "503 TXM_STALLED", "ECONNREFUSED", "timeout". */
function probe(url: string): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 30_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        if (res.statusCode === 200) return resolve(performance.now() - started);
        let code = '';
        try {
          code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? '';
        } catch {
          code = 'not JSON';
        }
        reject(new Error(`${res.statusCode} ${code}`.trim()));
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
    req.on('error', reject);
  });
}

const [deadline, interval, ...urls] = process.argv.slice(2);
const stopAt = Number(deadline);
const everyMs = Number(interval);
const latencies: number[] = [];
let failed = 0;
const failures: Record<string, number> = {};
while (Date.now() < stopAt) {
  const tick = new Promise((resolve) => setTimeout(resolve, everyMs));
  for (const url of urls) {
    try {
      latencies.push(await probe(url));
    } catch (err) {
      failed += 1;
      const reason = (err as { code?: string }).code ?? (err as Error).message;
      failures[reason] = (failures[reason] ?? 0) + 1;
    }
  }
  await tick;
}
process.stdout.write(`${JSON.stringify({ latencies, failed, failures })}\n`);
