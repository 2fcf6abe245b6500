/**
 * The prober of `txmesh bench-overload`, as its own process: it asks each probe URL on a fresh connection
 * every interval (as a kubelet does) until the deadline, then prints what it saw as one JSON line. Apart
 * from the load generator, so its timings are the server's and not those of a process busy with 4000 clients.
 * argv: <deadline epoch ms> <interval ms> <url>...
 */
import http from 'node:http';

interface Answer {
  ms: number;
  /** "200", or the refusal: "503 TXM_STALLED". */
  label: string;
}

/** How long the probe took to be answered, and with what; rejects with the socket error when unanswered. */
function probe(url: string): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 30_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        const ms = performance.now() - started;
        if (res.statusCode === 200) return resolve({ ms, label: '200' });
        let code: string;
        try {
          code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? 'no code';
        } catch {
          code = 'not JSON';
        }
        resolve({ ms, label: `${res.statusCode} ${code}` });
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
    req.on('error', reject);
  });
}

const [deadline, interval, ...urls] = process.argv.slice(2);
const stopAt = Number(deadline);
const everyMs = Number(interval);
/** Time to an HTTP answer, whatever its status: the figure the 100 ms goal is about. */
const latencies: number[] = [];
/** Probes not answered 200 (a kubelet counts them as failed), by path and status and code or socket error. */
const failures: Record<string, number> = {};
/** Probes answered after more than 100 ms: when they were sent (ms since the prober started), path and latency. */
const slow: { atMs: number; path: string; ms: number }[] = [];
const startedAt = Date.now();
let unanswered = 0;
// At least one round, even when this process started late (a loaded machine): a run with no probe measured nothing.
do {
  const tick = new Promise((resolve) => setTimeout(resolve, everyMs));
  for (const url of urls) {
    let failure: string | undefined;
    const sentAt = Date.now() - startedAt;
    try {
      const answer = await probe(url);
      latencies.push(answer.ms);
      if (answer.ms > 100) slow.push({ atMs: sentAt, path: new URL(url).pathname, ms: Math.round(answer.ms) });
      if (answer.label !== '200') failure = answer.label;
    } catch (err) {
      unanswered += 1;
      failure = (err as { code?: string }).code ?? (err as Error).message;
    }
    if (failure !== undefined) {
      const key = `${new URL(url).pathname} ${failure}`;
      failures[key] = (failures[key] ?? 0) + 1;
    }
  }
  await tick;
} while (Date.now() < stopAt);
process.stdout.write(`${JSON.stringify({ latencies, failures, unanswered, slow })}\n`);
