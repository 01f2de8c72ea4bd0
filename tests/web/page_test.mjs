// Browser tests of the web page (server/web/) against the real retrace-server with the oracle
// models: Playwright (playwright-core) drives Debian's chromium, headless, with a fresh profile.
// The oracle CLIP maps an image of class c and any text naming c to the same direction, and the
// oracle image encoder puts an exact copy nearest, so the expected hits are known.
//
// Environment (CTest sets it): RETRACE_SERVER_BINARY, RETRACE_CLI_BINARY, RETRACE_FIXTURES
// (<build>/test_fixtures), RETRACE_SCREENSHOTS (where to save screenshots), CHROMIUM.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const SERVER = process.env.RETRACE_SERVER_BINARY;
const CLI = process.env.RETRACE_CLI_BINARY;
const FIXTURES = process.env.RETRACE_FIXTURES;
const SHOTS = process.env.RETRACE_SCREENSHOTS || fs.mkdtempSync(path.join(os.tmpdir(), 'shots-'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CLASSES = ['bird', 'car', 'cat', 'dog', 'guitar', 'horse', 'house', 'tree'];
const image = (domain, cls, n = 0) => path.join(FIXTURES, 'images', domain, cls, `${cls}_${n}.png`);

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'retrace-web-'));
let server;
let base;
let grpcAddress;
let browser;

async function waitFor(check, what, seconds = 60) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function call(route, body) {
  const response = await fetch(base + route, { method: 'POST', body });
  const text = await response.text();
  assert.equal(response.status, 200, `${route}: ${text}`);
  return text;
}

before(async () => {
  const log = fs.openSync(path.join(work, 'server.log'), 'w');
  server = spawn(SERVER, ['--listen', '127.0.0.1:0', '--port-file', path.join(work, 'port'),
    '--http-listen', '127.0.0.1:0', '--http-port-file', path.join(work, 'http-port'),
    '--models', path.join(FIXTURES, 'oracle'), '--data-dir', path.join(work, 'data'),
    '--workers', '2'], { stdio: ['ignore', log, log] });
  const read = (name) => fs.readFileSync(path.join(work, name), 'utf8').trim();
  await waitFor(async () => fs.existsSync(path.join(work, 'port')) && read('port'),
    'the server wrote no port file');
  base = `http://127.0.0.1:${read('http-port')}`;
  grpcAddress = `127.0.0.1:${read('port')}`;
  await waitFor(async () => (await fetch(`${base}/v1/health`)).ok, 'the server was not SERVING');

  await call('/v1/collections', JSON.stringify({ collection: { name: 'pacs' } }));
  // Two domains of every class, through the HTTP Index route (JSON Lines, base64 images).
  const lines = [];
  for (const domain of ['photo', 'sketch']) {
    for (const cls of CLASSES) {
      lines.push(JSON.stringify({ items: [{ id: `${domain}/${cls}`,
        image: fs.readFileSync(image(domain, cls)).toString('base64'),
        attributes: { domain, uri: `https://example.org/${domain}/${cls}.png` } }] }));
    }
  }
  const answer = await call('/v1/collections/pacs/index', lines.join('\n'));
  const results = answer.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(results.length, lines.length);
  for (const r of results) assert.equal(r.results[0].status.code, 0, JSON.stringify(r));

  browser = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(work, 'profile-')), {
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
});

// openPage: the page, loaded, with every console error and uncaught exception collected.
async function openPage() {
  const page = await browser.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(base + '/');
  await page.locator('#collections button[data-name="pacs"]').waitFor();
  return { page, errors };
}

test('the page loads with no console errors and lists the collection with its count', async () => {
  const { page, errors } = await openPage();
  const entry = page.locator('#collections button[data-name="pacs"]');
  assert.match(await entry.innerText(), /pacs\s*16/);
  assert.equal(await page.locator('#health').innerText(), 'ready');
  await page.screenshot({ path: path.join(SHOTS, 'loaded.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('a text search, made with the keyboard alone, shows the class it names first', async () => {
  const { page, errors } = await openPage();
  await page.locator('#text').focus();
  await page.keyboard.type('a drawing of a horse');
  await page.keyboard.press('Enter');  // submits the form
  const first = page.locator('#hits li.hit').first();
  await first.waitFor();
  assert.match(await first.getAttribute('data-id'), /\/horse$/);
  await page.screenshot({ path: path.join(SHOTS, 'text-search.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('an image upload in provenance mode shows S, P, P\' and S\' as the gRPC answer has them',
  async () => {
    const { page, errors } = await openPage();
    await page.selectOption('#mode', 'PROVENANCE');
    await page.fill('#top-k', '5');
    await page.setInputFiles('#file', image('sketch', 'cat'));
    await page.click('#search');
    await page.locator('#hits li.hit').nth(4).waitFor();
    const shown = await page.$$eval('#hits li.hit', (cards) => cards.map((c) => ({
      id: c.dataset.id, s: Number(c.dataset.s), p: Number(c.dataset.p),
      pp: Number(c.dataset.pp), sp: Number(c.dataset.sp) })));
    // The same query over gRPC, through the CLI.
    const grpc = JSON.parse(execFileSync(CLI, ['--server', grpcAddress, '--json', 'search',
      '--collection', 'pacs', '--image', image('sketch', 'cat'), '--mode', 'provenance',
      '--top-k', '5'], { encoding: 'utf8' }));
    // The CLI prints proto field names and leaves zeros out.
    const expected = grpc.hits.map((h) => ({ id: h.id,
      s: h.provenance.base_score ?? 0, p: h.provenance.caption_rank ?? 0,
      pp: h.provenance.image_rank ?? 0, sp: h.provenance.score ?? 0 }));
    assert.equal(shown.length, 5);
    assert.equal(shown[0].id, 'sketch/cat', 'the exact copy first');
    for (let i = 0; i < expected.length; ++i) {
      assert.equal(shown[i].id, expected[i].id);
      assert.equal(shown[i].p, expected[i].p);
      assert.equal(shown[i].pp, expected[i].pp);
      assert.ok(Math.abs(shown[i].s - expected[i].s) < 1e-5, `S of ${shown[i].id}`);
      assert.ok(Math.abs(shown[i].sp - expected[i].sp) < 1e-5, `S' of ${shown[i].id}`);
    }
    // The bars are there, one set per hit, and the details show the attributes and the link.
    assert.equal(await page.locator("#hits li.hit").first().locator(".bar").count(), 4);
    await page.locator('#hits li.hit').first().locator('summary').click();
    const link = page.locator('#hits li.hit').first().locator('a');
    assert.equal(await link.getAttribute('href'), 'https://example.org/sketch/cat.png');
    // Thumbnails show (the collection keeps them by default).
    await page.waitForFunction(() => document.querySelector('#hits li.hit img.thumbnail')
      ?.naturalWidth > 0);
    await page.screenshot({ path: path.join(SHOTS, 'provenance.png'), fullPage: true });
    // "Search with this image" on the second hit (the photo of a cat): its thumbnail becomes
    // the query, and the item itself comes first.
    assert.equal(shown[1].id, 'photo/cat');
    await page.locator('#hits li.hit').nth(1).locator('button.again').click();
    await page.waitForFunction(() =>
      document.querySelector('#hits li.hit')?.dataset.id === 'photo/cat');
    assert.equal(await page.locator('#query-preview').isVisible(), true);
    assert.deepEqual(errors, []);
    await page.close();
  });

test('a file that is not an image shows a readable error, not a crash', async () => {
  const { page } = await openPage();
  const bad = path.join(work, 'notes.png');
  fs.writeFileSync(bad, 'these are notes, not pixels');
  await page.setInputFiles('#file', bad);
  await page.click('#search');
  const error = page.locator('#error');
  await error.waitFor({ state: 'visible' });
  const text = await error.innerText();
  assert.match(text, /^Could not search “pacs”\. The server said: .*not a supported image format/);
  assert.equal(await page.locator('#hits li').count(), 0);
  await page.screenshot({ path: path.join(SHOTS, 'bad-file.png'), fullPage: true });
  await page.close();
});
