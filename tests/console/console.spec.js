// The operators' console in headless Chromium, against a real `hub serve` with traffic
// flowing (see hub/app/tests/console.rs for the set-up). Screenshots of every step go to
// $CONSOLE_ARTIFACTS.
const { test, expect } = require('@playwright/test');
const path = require('path');

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: run this through hub/app/tests/console.rs`);
  return v;
};
const URL = env('CONSOLE_URL');
const ART = env('CONSOLE_ARTIFACTS');
const shot = (page, name) => page.screenshot({ path: path.join(ART, name + '.png'), fullPage: true });

async function login(page, name, password) {
  await page.goto(URL);
  await page.fill('#login-name', name);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
}

test('an operator watches the flow, finds a ticket and replays a dead letter', async ({ page }) => {
  const cspErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') cspErrors.push(m.text()); });

  // A wrong password first: refused, still on the login page.
  await page.goto(URL);
  await expect(page.locator('#login-heading')).toHaveText('登录');
  await shot(page, '01-login');
  await login(page, env('OPERATOR_NAME'), 'not-the-password');
  await expect(page.locator('#login-error')).toHaveText('用户名或密码错误');
  await expect(page.locator('#nav')).toBeHidden();
  await shot(page, '02-login-refused');

  await login(page, env('OPERATOR_NAME'), env('OPERATOR_PASSWORD'));
  await expect(page.locator('#nav')).toBeVisible();
  await expect(page.locator('#whoami')).toContainText(env('OPERATOR_NAME'));

  // Live counts: the accepted pushes since start grow while the test produces traffic.
  const cell = page.locator('#totals-since_start td[data-key="ingress_ok"]');
  await expect(cell).not.toHaveText('');
  const first = Number(await cell.textContent());
  await expect.poll(async () => Number(await cell.textContent()), { timeout: 60000 }).toBeGreaterThan(first);
  await expect(page.locator('#flow-chart canvas')).toHaveCount(1);
  await expect(page.locator('#edges-table tbody tr').first()).toBeVisible();
  await expect(page.locator('#edges-table')).toContainText('hotline12345/sign');
  await shot(page, '03-overview-live');

  // Domain apps: the test's consumer group, which committed offsets to Kafka, is an app node
  // fed by the test's topic, with its rate and lag, in the apps table and the edges table.
  const appRow = page.locator('#apps-table tbody tr', { hasText: env('APP_GROUP') });
  await expect(appRow.first()).toBeVisible({ timeout: 60000 });
  await expect(appRow.first()).toContainText('hotline.ticket.signed_t');
  await expect(page.locator('#edges-table tbody tr[data-kind="consumption"]', { hasText: env('APP_GROUP') }).first()).toContainText('积压');
  await expect(page.locator('#apps-note')).toContainText('提交消费位点后才会出现');
  await page.locator('#apps-table').scrollIntoViewIfNeeded();
  await shot(page, '03b-apps');

  // The adapter page: health, breaker, routes, recent dead letters.
  await page.click('#nav button[data-view="adapters"]');
  const adapterRow = page.locator('#adapters-table tbody tr', { hasText: 'hotline12345' });
  await expect(adapterRow).toBeVisible();
  await adapterRow.locator('button').click();
  await expect(page.locator('#adapter-detail')).toBeVisible();
  await expect(page.locator('#adapter-routes')).toContainText('hotline12345/sign');
  await expect(page.locator('#adapter-dead')).toContainText('EGRESS_PARTNER_REFUSED');
  await shot(page, '04-adapter');

  // Trace search by ticket number.
  await page.click('#nav button[data-view="trace"]');
  await page.fill('#trace-id', env('TICKET'));
  await page.click('#trace-search');
  await expect(page.locator('#trace-result tr[data-stage="delivered"]')).toHaveCount(1);
  await expect(page.locator('#trace-result')).toContainText(env('TICKET'));
  await shot(page, '05-trace');

  // A mutating request without the CSRF header is refused.
  const noCsrf = await page.request.post(URL + 'api/dead-letters/x/replay', { data: {} });
  expect(noCsrf.status()).toBe(403);
  expect((await noCsrf.json()).code).toBe('CONSOLE_CSRF');

  // The dead letter: shown masked, replayed after confirmation.
  await page.click('#nav button[data-view="dlq"]');
  await page.fill('#dlq-about', env('DEAD_TICKET'));
  await page.click('#dlq-search');
  const dead = page.locator('#dlq-table tbody tr', { hasText: env('DEAD_TICKET') });
  await expect(dead).toHaveCount(1);
  await expect(dead).toHaveAttribute('data-status', 'pending');
  await dead.getByRole('button', { name: '查看' }).click();
  await expect(page.locator('#dlq-detail-body')).toContainText('EGRESS_PARTNER_REFUSED');
  await expect(page.locator('#dlq-detail-body')).toContainText('已加密 / sealed');
  await expect(page.locator('#dlq-detail-body')).not.toContainText(env('PERSONAL_NAME'));
  await shot(page, '06-dead-letter');
  await dead.getByRole('button', { name: '重放' }).click();
  await expect(page.locator('#confirm-dialog')).toBeVisible();
  await expect(page.locator('#confirm-text')).toContainText('重放死信');
  await shot(page, '07-replay-confirm');
  await page.click('#confirm-ok');
  await expect(page.locator('#dlq-table tbody tr', { hasText: env('DEAD_TICKET') })).toHaveAttribute('data-status', 'replayed');
  await expect(page.locator('#dlq-table')).toContainText('console:' + env('OPERATOR_NAME'));
  await shot(page, '08-replayed');

  // English.
  await page.click('#lang-toggle');
  await expect(page.locator('#nav button[data-view="dlq"]')).toHaveText('Dead letters');
  await expect(page.locator('html')).toHaveAttribute('lang', 'en');
  await page.click('#nav button[data-view="overview"]');
  await expect(page.locator('#overview-scope')).toContainText('since it started');
  await expect(page.locator('#apps-note')).toContainText('once they commit their offsets to Kafka');
  await expect(page.locator('#apps-table')).toContainText(env('APP_GROUP'));
  await shot(page, '09-english');
  await page.reload();
  await expect(page.locator('#nav button[data-view="dlq"]')).toHaveText('Dead letters');

  await page.click('#logout');
  await expect(page.locator('#nav')).toBeHidden();
  expect(cspErrors.filter((e) => e.includes('Content Security Policy') && e.includes('script'))).toEqual([]);
});

test('a viewer sees dead letters but cannot replay them', async ({ page }) => {
  await login(page, env('VIEWER_NAME'), env('VIEWER_PASSWORD'));
  await expect(page.locator('#nav')).toBeVisible();
  await page.click('#nav button[data-view="dlq"]');
  await page.fill('#dlq-about', env('DEAD_TICKET'));
  await page.click('#dlq-search');
  // The replayed one, and a new one if the partner refused it again.
  await expect(page.locator('#dlq-table tbody tr', { hasText: env('DEAD_TICKET') }).first()).toBeVisible();
  await expect(page.locator('#dlq-table button', { hasText: '查看' }).first()).toBeVisible();
  await expect(page.locator('#dlq-table button.replay')).toHaveCount(0);
  await shot(page, '10-viewer-no-replay');
  const session = await (await page.request.get(URL + 'api/session')).json();
  expect(session.role).toBe('viewer');
  const refused = await page.request.post(URL + 'api/dead-letters/' + env('DEAD_LETTER_ID') + '/replay', {
    data: {}, headers: { 'X-CSRF-Token': session.csrf_token },
  });
  expect(refused.status()).toBe(403);
  expect((await refused.json()).code).toBe('CONSOLE_FORBIDDEN');
});
