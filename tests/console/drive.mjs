// Drives headless Chromium through the console of a running `qmq dev`.
// Run by console_test.go; configuration comes from the environment:
//   QMQ_CONSOLE   the console's base URL (http://127.0.0.1:PORT)
//   QMQ_TOKEN     the dev admin token
//   QMQ_SUBJECT   a subject with messages and QMQ_GROUP a consumer group of it
//   QMQ_MESSAGE   the id of a message sent to QMQ_SUBJECT (backup scenario)
//   QMQ_DELAY_SUBJECT  a subject with two delay messages pending in dev_delay
//                 (pages scenario)
//   QMQ_ARTIFACTS the directory for screenshots
// argv[2] is the scenario: "pages" or "backup". Exits non-zero on the
// first failed step, naming it.
import { chromium } from 'playwright-core';
import path from 'node:path';
import fs from 'node:fs';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const base = env('QMQ_CONSOLE');
const token = env('QMQ_TOKEN');
const subject = env('QMQ_SUBJECT');
const group = process.env.QMQ_GROUP || '';
const artifacts = env('QMQ_ARTIFACTS');
const scenario = process.argv[2] || 'pages';
fs.mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.QMQ_CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 60000,
});
let step = 'start';
const shot = async (page, name) => page.screenshot({ path: path.join(artifacts, `${scenario}-${name}.png`), fullPage: true });
const expectText = async (page, selector, text) => {
  const got = await page.locator(selector).first().innerText({ timeout: 15000 });
  if (!got.includes(text)) throw new Error(`${selector} says ${JSON.stringify(got.slice(0, 500))}; want ${JSON.stringify(text)}`);
};
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

  step = 'log in';
  await page.goto(`${base}/login`);
  await page.fill('input[name=token]', token);
  await Promise.all([page.waitForURL(/\/cluster/), page.click('form[action="/login"] button')]);
  await expectText(page, 'header .who', 'admin: dev');

  if (scenario === 'pages') {
    const pages = [
      ['cluster', '/cluster', 'dev_group'],
      ['subjects', '/subjects', subject],
      ['groups', '/groups', group],
      ['group', `/groups?subject=${encodeURIComponent(subject)}`, group],
      ['messages', '/messages', 'Messages'],
      ['deadletters', '/deadletters', 'Dead letters'],
      ['delay', '/delay', 'dev_delay'],
      ['watchdog', '/watchdog', 'Watchdog'],
    ];
    for (const [name, url, want] of pages) {
      step = `open ${url}`;
      const resp = await page.goto(base + url);
      if (resp.status() !== 200) throw new Error(`HTTP ${resp.status()}`);
      await expectText(page, 'main', want);
      await shot(page, name);
    }

    step = 'see the pending delay messages per subject of dev_delay';
    const delaySubject = env('QMQ_DELAY_SUBJECT');
    await page.goto(`${base}/delay`);
    const delayRow = page.locator(`table.delay-subjects[data-group="dev_delay"] tr[data-subject="${delaySubject}"]`);
    const pending = (await delayRow.locator('td.pending').innerText({ timeout: 15000 })).trim();
    if (pending !== '2') throw new Error(`${delaySubject} shows ${pending} pending; want 2`);
    const due = (await delayRow.locator('td.due').innerText()).trim();
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(due)) throw new Error(`${delaySubject}'s earliest due is ${JSON.stringify(due)}; want an exact UTC time`);
    await shot(page, 'delay-subjects');

    step = 'follow the links from the subjects page to the consumer group';
    await page.goto(`${base}/subjects`);
    await Promise.all([page.waitForURL(/\/groups\?/), page.locator('#subjects a.chip', { hasText: group }).first().click()]);
    await expectText(page, 'h1', subject);
    await expectText(page, `section#group-${group}`, 'backlog');

    step = 'reset the offset of the consumer group to earliest';
    await page.goto(`${base}/groups?subject=${encodeURIComponent(subject)}`);
    const form = page.locator(`section#group-${group} form.reset`);
    await form.locator('select[name=to]').selectOption('earliest');
    await Promise.all([page.waitForURL(/\/actions\/reset/), form.locator('button').click()]);
    await expectText(page, '#result', `reset to earliest`);
    await shot(page, 'reset-done');
    await Promise.all([page.waitForURL(/\/groups/), page.click('#back')]);

    step = 'force a consumer offline, then online';
    await page.goto(`${base}/groups?subject=${encodeURIComponent(subject)}`);
    await Promise.all([page.waitForURL(/\/actions\/offline/), page.locator(`section#group-${group} button[name=state][value="1"]`).first().click()]);
    await expectText(page, '#result', 'forced offline');
    await page.goto(`${base}/groups?subject=${encodeURIComponent(subject)}`);
    await expectText(page, `section#group-${group}`, 'OFFLINE');
    await shot(page, 'offline');
    await Promise.all([page.waitForURL(/\/actions\/offline/), page.locator(`section#group-${group} button[name=state][value="0"]`).first().click()]);
    await expectText(page, '#result', 'forced online');

    step = 'mark dev_group readonly and unmark it';
    await page.goto(`${base}/cluster`);
    const row = page.locator('#groups tr', { hasText: 'dev_group' });
    await Promise.all([page.waitForURL(/\/actions\/readonly/), row.locator('button[value=true]').click()]);
    await expectText(page, '#result', 'read-only');
    await page.goto(`${base}/cluster`);
    await Promise.all([page.waitForURL(/\/actions\/readonly/), page.locator('#groups tr', { hasText: 'dev_group' }).locator('button[value=false]').click()]);
    await expectText(page, '#result', 'takes * again');
    await shot(page, 'readonly-done');
  } else if (scenario === 'backup') {
    const id = env('QMQ_MESSAGE');
    step = 'search the sent message by subject and id (a shareable URL)';
    await page.goto(`${base}/messages?subject=${encodeURIComponent(subject)}&id=${encodeURIComponent(id)}`);
    await expectText(page, '#results', id);
    await shot(page, 'search');
    step = 'open its detail and consume records';
    await Promise.all([page.waitForURL(/\/messages\/detail/), page.locator('#results a', { hasText: 'detail and records' }).first().click()]);
    await expectText(page, '#records', group);
    if (await page.locator('svg.timeline circle').count() < 1) throw new Error('no record drawn on the timeline');
    await shot(page, 'detail');
    step = 'resend a dead letter';
    await page.goto(`${base}/deadletters?subject=${encodeURIComponent(subject)}`);
    await shot(page, 'deadletters');
    await Promise.all([page.waitForURL(/\/actions\/resend/), page.locator('#results form button').first().click()]);
    await expectText(page, '#result', 'sent again');
    await shot(page, 'resend-done');
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  if (errors.length) throw new Error(`the pages logged errors: ${errors.join('; ')}`);
  console.log(`ok: ${scenario}`);
} catch (e) {
  console.error(`FAILED at step "${step}": ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
