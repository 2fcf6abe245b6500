/**
 * The live dashboard: one self-contained HTML page (no external assets, works offline) that polls
 * GET /dashboard/data every second and draws it. Every value from the data goes in through textContent,
 * never as HTML: service names and abort reasons come from other processes.
 */
export const DASHBOARD_DATA_PATH = '/dashboard/data';
export const DASHBOARD_POLL_MS = 1000;

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>txmesh coordinator</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 28px; align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0 12px 0 0; }
  .figure { display: flex; flex-direction: column; }
  .figure b { font-size: 20px; font-variant-numeric: tabular-nums; }
  .figure span { font-size: 11px; text-transform: uppercase; opacity: .7; }
  main { padding: 16px 20px; display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
  section { background: #fff; border-radius: 6px; padding: 12px 14px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 14px; margin: 0 0 8px; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { text-align: right; padding: 3px 8px; border-bottom: 1px solid #eceef2; white-space: nowrap; }
  th:first-child, td:first-child { text-align: left; }
  th { font-weight: 600; font-size: 12px; color: #5b6475; }
  .empty { color: #8a93a3; font-style: italic; }
  .stale { color: #b4232a; }
  canvas { width: 100%; height: 180px; }
  .legend span { display: inline-block; margin-right: 14px; }
  .swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: middle; }
  #status { margin-left: auto; font-size: 12px; opacity: .8; }
</style>
</head>
<body>
<header>
  <h1>txmesh <span id="shard"></span></h1>
  <div class="figure"><b id="committed-total">–</b><span>committed</span></div>
  <div class="figure"><b id="aborted-total">–</b><span>aborted</span></div>
  <div class="figure"><b id="rate">–</b><span>decided / s (10 s)</span></div>
  <div class="figure"><b id="p50">–</b><span>p50 (1 min)</span></div>
  <div class="figure"><b id="p99">–</b><span>p99 (1 min)</span></div>
  <div class="figure"><b id="in-flight">–</b><span>in flight</span></div>
  <div class="figure"><b id="in-doubt-count">–</b><span>in doubt</span></div>
  <div id="status">connecting…</div>
</header>
<main>
  <section class="wide">
    <h2>Services</h2>
    <table id="services">
      <thead><tr><th>service</th><th>CPU %</th><th>memory</th><th>latency p50</th><th>latency p99</th><th>loop delay</th>
        <th>lane limit</th><th>in flight</th><th>queued</th><th>est. wait</th><th>last report</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section class="wide">
    <h2>Committed and aborted per second, last 5 minutes</h2>
    <div class="legend"><span><i class="swatch" style="background:#2f9e44"></i>committed</span><span><i class="swatch" style="background:#e03131"></i>aborted</span></div>
    <canvas id="rates" width="1200" height="180"></canvas>
  </section>
  <section>
    <h2>In-doubt branches</h2>
    <table id="in-doubt"><thead><tr><th>transaction</th><th>service</th><th>action</th><th>age</th><th>attempts</th><th>last error</th></tr></thead><tbody></tbody></table>
  </section>
  <section>
    <h2>Aborts by reason, last 5 minutes</h2>
    <table id="abort-reasons"><thead><tr><th>reason</th><th>aborts</th></tr></thead><tbody></tbody></table>
    <h2 style="margin-top:12px">Recent aborts</h2>
    <table id="recent-aborts"><thead><tr><th>transaction</th><th>reason</th><th>when</th></tr></thead><tbody></tbody></table>
  </section>
</main>
<script>
(() => {
  const $ = (id) => document.getElementById(id);
  const fmtMs = (ms) => ms === undefined || ms === null ? '–' : ms === 0 ? '0 ms' : ms < 10 ? ms.toFixed(2) + ' ms' : ms < 1000 ? ms.toFixed(0) + ' ms' : (ms / 1000).toFixed(1) + ' s';
  const fmtBytes = (b) => b === undefined ? '–' : (b / 1048576).toFixed(0) + ' MiB';
  const fmtNum = (n) => n === undefined || n === null ? '–' : String(n);
  const ago = (now, at) => at === undefined ? '–' : fmtMs(Math.max(0, Math.round(now - at))) + ' ago';
  function fill(table, rows, empty) {
    const body = $(table).tBodies[0];
    body.replaceChildren();
    if (rows.length === 0) {
      const tr = body.insertRow(); const td = tr.insertCell(); td.colSpan = 20; td.className = 'empty'; td.textContent = empty;
      return;
    }
    for (const row of rows) {
      const tr = body.insertRow();
      if (row.key !== undefined) tr.dataset.service = row.key;
      for (const cell of row.cells) { const td = tr.insertCell(); td.textContent = cell; if (row.stale) td.classList.add('stale'); }
    }
  }
  function drawRates(perSecond) {
    const canvas = $('rates'); const ctx = canvas.getContext('2d');
    const w = canvas.width, h = canvas.height, pad = 28;
    ctx.clearRect(0, 0, w, h);
    const max = Math.max(1, ...perSecond.map((p) => Math.max(p.committed, p.aborted)));
    ctx.fillStyle = '#5b6475'; ctx.font = '11px system-ui';
    ctx.fillText(String(max) + '/s', 2, 12); ctx.fillText('0', 2, h - pad + 4);
    ctx.strokeStyle = '#eceef2'; ctx.beginPath(); ctx.moveTo(pad, h - pad); ctx.lineTo(w, h - pad); ctx.stroke();
    const step = (w - pad) / Math.max(1, perSecond.length - 1);
    for (const [key, color] of [['committed', '#2f9e44'], ['aborted', '#e03131']]) {
      ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
      perSecond.forEach((p, i) => { const x = pad + i * step, y = h - pad - (p[key] / max) * (h - pad - 16); i === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y); });
      ctx.stroke();
    }
    ctx.fillStyle = '#5b6475'; ctx.fillText('-5 min', pad, h - 8); ctx.fillText('now', w - 26, h - 8);
  }
  function render(d) {
    $('shard').textContent = 'shard ' + d.shard + ' of ' + d.shards;
    $('committed-total').textContent = fmtNum(d.totals.committed);
    $('aborted-total').textContent = fmtNum(d.totals.aborted);
    $('in-flight').textContent = fmtNum(d.totals.inFlight);
    $('in-doubt-count').textContent = fmtNum(d.totals.inDoubt);
    const last = d.activity.perSecond.slice(-11, -1);
    $('rate').textContent = (last.reduce((s, p) => s + p.committed + p.aborted, 0) / Math.max(1, last.length)).toFixed(1);
    $('p50').textContent = fmtMs(d.activity.latency.p50Ms);
    $('p99').textContent = fmtMs(d.activity.latency.p99Ms);
    fill('services', d.services.map((s) => {
      const r = s.report || {}, q = s.scheduler || {};
      return { key: s.service, stale: d.now - s.lastSeenAt > 5000, cells: [s.service, r.cpuPercent === undefined ? '–' : r.cpuPercent.toFixed(1), fmtBytes(r.rssBytes),
        fmtMs(r.latencyP50Ms), fmtMs(r.latencyP99Ms), fmtMs(r.eventLoopDelayMs), fmtNum(q.limit), fmtNum(q.inFlight), fmtNum(q.queued), fmtMs(q.estimatedWaitMs), ago(d.now, s.lastSeenAt)] };
    }), 'no service registered');
    drawRates(d.activity.perSecond);
    fill('in-doubt', d.inDoubt.map((b) => ({ cells: [b.txId, b.service, b.action, fmtMs(b.ageMs), String(b.attempts), b.lastError || ''] })), 'none');
    const reasons = Object.entries(d.activity.abortsByReason).sort((a, b) => b[1] - a[1]);
    fill('abort-reasons', reasons.map(([reason, n]) => ({ cells: [reason, String(n)] })), 'no aborts');
    fill('recent-aborts', d.activity.recentAborts.slice(0, 12).map((a) => ({ cells: [a.txId, a.reason, ago(d.now, a.at)] })), 'no aborts');
  }
  async function poll() {
    try {
      const res = await fetch(${JSON.stringify(DASHBOARD_DATA_PATH)}, { cache: 'no-store' });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      render(await res.json());
      $('status').textContent = 'updated ' + new Date().toLocaleTimeString();
    } catch (err) {
      $('status').textContent = 'cannot reach the coordinator (' + err.message + '), retrying';
    } finally {
      setTimeout(poll, ${DASHBOARD_POLL_MS});
    }
  }
  poll();
})();
</script>
</body>
</html>
`;
