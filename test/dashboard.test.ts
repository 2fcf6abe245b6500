/**
 * The coordinator's live dashboard in a real browser (Debian's Chromium, headless, driven by
 * playwright-core): while orders run it lists the four services and its committed count rises.
 * The screenshot is saved as dist/test/dashboard.png.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { randomOrder, orderRequest, seededRandom } from '@txmesh/example-ecommerce';
import { sleep } from '@txmesh/lab';
import { postJson, SMALL_CATALOG, startTestCluster } from './helpers.ts';
import { ensureTestTool } from './tools.ts';

const SCREENSHOT = fileURLToPath(new URL('./dashboard.png', import.meta.url));
/** Bounded: the load stops after this many orders or when the test is done, whichever comes first. */
const MAX_ORDERS = 2000;

test('the dashboard shows the four services and a rising committed count during a run', async (t) => {
  const executablePath = ensureTestTool('chromium');
  const cluster = await startTestCluster(t, { catalog: { ...SMALL_CATALOG, stockPerSku: 100_000, balancePerAccount: 10_000_000 } });
  const coordinatorUrl = cluster.coordinators[0]!.url;

  let running = true;
  const rng = seededRandom(15);
  const catalog = { ...SMALL_CATALOG, stockPerSku: 100_000, balancePerAccount: 10_000_000 };
  let placed = 0;
  // Four clients in a closed loop; a failure once the test is ending (cluster stopping) is no finding.
  const load = Promise.all(Array.from({ length: 4 }, async () => {
    while (running && placed < MAX_ORDERS) {
      const orderId = `dash-${placed++}`;
      await postJson(`${coordinatorUrl}/v1/transactions`, orderRequest(randomOrder(rng, catalog, orderId), 3000)).catch((err: unknown) => {
        if (running) throw err;
      });
    }
  }));
  const stopLoad = async (): Promise<void> => {
    running = false;
    await load;
  };
  t.after(stopLoad);

  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const response = await page.goto(`${coordinatorUrl}/dashboard`);
  assert.equal(response?.status(), 200);

  const rows = page.locator('#services tbody tr[data-service]');
  await rows.nth(3).waitFor({ timeout: 15_000 });
  const names = (await rows.locator('td:first-child').allTextContents()).sort();
  assert.deepEqual(names, ['inventory', 'order', 'payment', 'shipping']);

  const committed = async (): Promise<number> => Number((await page.locator('#committed-total').textContent()) ?? NaN);
  const deadline = Date.now() + 20_000;
  let first = await committed();
  while (!(first > 0) && Date.now() < deadline) {
    await sleep(200);
    first = await committed();
  }
  assert.ok(first > 0, `committed count shown: ${first}`);
  let later = first;
  while (later <= first && Date.now() < deadline) {
    await sleep(250);
    later = await committed();
  }
  assert.ok(later > first, `the committed count rose on its own: ${first} -> ${later}`);
  assert.match((await page.locator('#status').textContent()) ?? '', /^updated /);

  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  t.diagnostic(`screenshot: ${SCREENSHOT}`);
  await stopLoad();
});
