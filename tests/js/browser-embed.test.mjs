// <backing-chain-editor> embedded in a host page that feeds bytes through its
// own reader (as a web console reading on the host would), and the clear
// messages when the wasm cannot load.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startServer, WWW } from '../support/server.mjs';
import { launch, ARTIFACTS } from '../support/browser.mjs';
import { haveQemuImg, makeChain, qemuImg } from '../support/images.mjs';

const skip = haveQemuImg() ? false : 'qemu-img is not installed';
const HEAD = 64 * 1024; // the host hands over only this much of each file

let browser;
let dir;
const servers = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bce-embed-'));
  browser = await launch();
});

after(async () => {
  await browser?.close();
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function serve(opts) {
  const s = await startServer(opts);
  servers.push(s);
  return `http://127.0.0.1:${s.address().port}`;
}

function head(path) {
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(HEAD);
  const n = readSync(fd, buf, 0, HEAD, 0);
  closeSync(fd);
  return { b64: buf.subarray(0, n).toString('base64'), size: statSync(path).size };
}

const HOST_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; connect-src 'self'">
<title>host</title>
<link rel="stylesheet" href="/host.css">
<script type="module" src="/host.js"></script>
</head><body>
<h1>A console</h1>
<backing-chain-editor layout="flat"></backing-chain-editor>
</body></html>`;

const HOST_JS = `
import { register } from '/backing-chain-editor.js';
import * as again from '/backing-chain-editor.js?second-copy';
import { IMAGES } from '/host-data.js';
register({ wasmUrl: '/pkg/backing_chain_bg.wasm' });
register({ wasmUrl: '/pkg/backing_chain_bg.wasm' }); // twice: harmless
again.register();
window.__reads = [];
window.__changes = [];
window.__diags = [];
window.__progress = new Set();
const el = document.querySelector('backing-chain-editor');
// The element's events (prefixed), heard on the document: they bubble out
// of the shadow root. The unprefixed ones are deprecated aliases.
window.__eventFlags = [];
document.addEventListener('backing-chain-editor-change', (e) => {
  __changes.push(e.detail.xml);
  __eventFlags.push([e.type, e.bubbles, e.composed, e.cancelable, e.target === el]);
});
document.addEventListener('backing-chain-editor-diagnostics', (e) => __diags.push(e.detail.diagnostics));
window.__oldChanges = [];
window.__oldDiags = [];
el.addEventListener('change', (e) => __oldChanges.push(e.detail));
el.addEventListener('diagnostics', (e) => __oldDiags.push(e.detail));
new MutationObserver(() => {
  const p = el.shadowRoot.querySelector('.progress');
  if (p && !p.hidden) __progress.add(p.textContent);
}).observe(el.shadowRoot, { subtree: true, childList: true, characterData: true, attributes: true });
const bytesOf = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
window.__add = (names) => Promise.all(names.map((name) => {
  const bytes = bytesOf(IMAGES[name].b64);
  return el.addImage(name, async (offset, length) => {
    __reads.push([name, offset, length]);
    if (offset + length > bytes.length && offset + length <= IMAGES[name].size) throw new Error('read beyond what the host sent');
    return bytes.slice(offset, offset + length);
  }, { size: IMAGES[name].size });
}));
window.__many = (n) => {
  const bytes = bytesOf(IMAGES['/images/base.qcow2'].b64);
  const jobs = [];
  for (let i = 0; i < n; i++) jobs.push(el.addImage('/many/img' + i + '.qcow2', async (o, l) => bytes.slice(o, o + l), { size: IMAGES['/images/base.qcow2'].size }));
  return Promise.all(jobs);
};
`;

const HOST_CSS = 'backing-chain-editor { --bce-accent: rgb(200, 0, 100); }';

test('embedded element with a custom reader: tree, events, API, theming, readonly', { skip }, async (t) => {
  qemuImg('--version');
  const f = makeChain(mkdtempSync(join(dir, 'e-')));
  const data = { '/images/top.qcow2': head(f.top), '/images/mid.qcow2': head(f.mid), '/images/base.qcow2': head(f.base) };
  const origin = await serve({
    extra: {
      '/host.html': { type: 'text/html; charset=utf-8', body: HOST_HTML },
      '/host.js': { type: 'text/javascript', body: HOST_JS },
      '/host.css': { type: 'text/css', body: HOST_CSS },
      '/host-data.js': { type: 'text/javascript', body: `export const IMAGES = ${JSON.stringify(data)};` },
    },
  });
  const requests = [];
  const page = await browser.context.newPage();
  t.after(() => page.close());
  page.on('request', (r) => requests.push(r.url()));
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${origin}/host.html`);
  await page.locator('backing-chain-editor').evaluate((e) => e.ready);
  await page.evaluate(() => window.__add(['/images/top.qcow2', '/images/mid.qcow2', '/images/base.qcow2']));

  const tree = await page.locator('backing-chain-editor').evaluate((el) =>
    [...el.shadowRoot.querySelectorAll('li[role=treeitem][data-image]')].map((li) => `${li.getAttribute('aria-level')}:${li.querySelector('.name').textContent}`),
  );
  assert.deepEqual(tree, ['1:/images/top.qcow2', '2:/images/mid.qcow2', '3:/images/base.qcow2']);
  // Only header ranges were asked for, all inside what the host sent.
  const reads = await page.evaluate(() => window.__reads);
  assert.ok(reads.length >= 3);
  for (const [, off, len] of reads) assert.ok(off + len <= HEAD, `read ${off}+${len}`);
  // The layout attribute was honoured: flat, with the proposal note.
  const changes = await page.evaluate(() => window.__changes);
  const last = changes[changes.length - 1];
  assert.match(last, /<alias name='vda\[2\]' parent='vda'\/>/);
  assert.match(last, /<source file='\/images\/base\.qcow2'\/>/);
  assert.equal(await page.locator('backing-chain-editor pre.xml').innerText(), last);
  // getXml with another layout, without changing the element's.
  const nested = await page.locator('backing-chain-editor').evaluate((el) => el.getXml({ layout: 'nested' }));
  assert.match(nested, /<backingStore type='file' index='3'>\s*<format type='qcow2'\/>\s*<source file='\/images\/base\.qcow2'\/>\s*<backingStore\/>/);
  assert.equal(await page.locator('backing-chain-editor').evaluate((el) => el.layout), 'flat');
  // The diagnostics event carries an array.
  const diags = await page.evaluate(() => window.__diags);
  assert.ok(diags.length >= 1 && Array.isArray(diags[diags.length - 1]));
  // The events bubble, composed, not cancelable, from the element.
  const flags = await page.evaluate(() => window.__eventFlags);
  assert.ok(flags.length >= 1);
  for (const f of flags) assert.deepEqual(f, ['backing-chain-editor-change', true, true, false, true]);
  // The deprecated unprefixed aliases still fire, as often and with the old details.
  assert.deepEqual(await page.evaluate(() => window.__oldChanges), changes);
  assert.deepEqual(await page.evaluate(() => window.__oldDiags), diags);
  // domain-xml as an attribute.
  await page.locator('backing-chain-editor').evaluate((el) =>
    el.setAttribute('domain-xml', "<domain><name>c1</name><devices><disk type='file' device='disk'><source file='/images/top.qcow2'/><target dev='vdb' bus='virtio'/></disk></devices></domain>"),
  );
  const withDomain = await page.evaluate(() => window.__changes[window.__changes.length - 1]);
  assert.match(withDomain, /<name>c1<\/name>/);
  assert.match(withDomain, /<alias name='vdb\[2\]' parent='vdb'\/>/);
  // Themed from outside through a custom property.
  const color = await page.locator('backing-chain-editor .badge.fmt').first().evaluate((e) => getComputedStyle(e).color);
  assert.equal(color, 'rgb(200, 0, 100)');
  // readonly: no drop zone, the XML text cannot be edited.
  await page.locator('backing-chain-editor').evaluate((el) => (el.readonly = true));
  assert.equal(await page.locator('backing-chain-editor .drop').isVisible(), false);
  assert.equal(await page.locator('backing-chain-editor textarea').evaluate((e) => e.readOnly), true);
  await page.screenshot({ path: join(ARTIFACTS, 'embed-host.png'), fullPage: true });
  // clear()
  await page.locator('backing-chain-editor').evaluate((el) => el.clear());
  assert.equal(await page.locator('backing-chain-editor li[role=treeitem]').count(), 0);
  assert.deepEqual(errors, []);
  for (const u of requests) {
    const url = new URL(u);
    assert.equal(url.origin, origin, u);
  }
});

test('many images: a progress count, and all of them end up in the forest', { skip }, async (t) => {
  const f = makeChain(mkdtempSync(join(dir, 'm-')));
  const data = { '/images/base.qcow2': head(f.base) };
  const origin = await serve({
    extra: {
      '/host.html': { type: 'text/html; charset=utf-8', body: HOST_HTML },
      '/host.js': { type: 'text/javascript', body: HOST_JS },
      '/host.css': { type: 'text/css', body: HOST_CSS },
      '/host-data.js': { type: 'text/javascript', body: `export const IMAGES = ${JSON.stringify(data)};` },
    },
  });
  const page = await browser.context.newPage();
  t.after(() => page.close());
  await page.goto(`${origin}/host.html`);
  await page.locator('backing-chain-editor').evaluate((e) => e.ready);
  await page.evaluate(() => window.__many(400));
  assert.equal(await page.locator('backing-chain-editor li[role=treeitem][data-image]').count(), 400);
  const seen = await page.evaluate(() => [...window.__progress]);
  assert.ok(seen.some((s) => /probed \d+ \/ 400/.test(s)), seen.join(' | '));
  assert.equal(await page.locator('backing-chain-editor .progress').isVisible(), false);
});

test('wasm served with the wrong MIME type: a clear message', async (t) => {
  const origin = await serve({ types: { '.wasm': 'application/octet-stream' } });
  const page = await browser.context.newPage();
  t.after(() => page.close());
  await page.goto(`${origin}/`);
  const err = await page.locator('backing-chain-editor').evaluate((e) => e.ready.then(() => null, (x) => x.kind));
  assert.equal(err, 'mime');
  const text = await page.locator('backing-chain-editor .status').innerText();
  assert.match(text, /application\/octet-stream/);
  assert.match(text, /application\/wasm/);
  await page.screenshot({ path: join(ARTIFACTS, 'wasm-wrong-mime.png') });
});

test("a CSP without 'wasm-unsafe-eval': a clear message", async (t) => {
  const html = readFileSync(join(WWW, 'index.html'), 'utf8').replace(" 'wasm-unsafe-eval'", '');
  assert.doesNotMatch(html, /wasm-unsafe-eval/);
  const origin = await serve({ extra: { '/strict.html': { type: 'text/html; charset=utf-8', body: html } } });
  const page = await browser.context.newPage();
  t.after(() => page.close());
  await page.goto(`${origin}/strict.html`);
  const err = await page.locator('backing-chain-editor').evaluate((e) => e.ready.then(() => null, (x) => x.kind));
  assert.equal(err, 'csp');
  assert.match(await page.locator('backing-chain-editor .status').innerText(), /'wasm-unsafe-eval'/);
  await page.screenshot({ path: join(ARTIFACTS, 'wasm-csp.png') });
});

test('opened as file://: the page says to serve it over HTTP', async (t) => {
  const page = await browser.context.newPage();
  t.after(() => page.close());
  // The module script cannot load from file:// (Chromium blocks it): wait
  // until that failure is reported, then the boot message must still be up.
  const blocked = new Promise((resolve) => {
    page.on('requestfailed', (r) => r.url().endsWith('/app.js') && resolve(r.url()));
    page.on('console', (m) => m.type() === 'error' && /app\.js/.test(m.text()) && resolve(m.text()));
  });
  await page.goto(pathToFileURL(join(WWW, 'index.html')).href, { waitUntil: 'load' });
  const failure = await Promise.race([blocked, page.waitForTimeout(10_000).then(() => null)]);
  assert.ok(failure, 'the module script did not fail to load (10 s)');
  const boot = page.locator('#boot');
  assert.equal(await boot.isVisible(), true);
  assert.match(await boot.innerText(), /file:\/\/.*HTTP/s);
});

test('a missing wasm (not built): HTTP 404 is reported', async (t) => {
  const origin = await serve({ extra: {} , root: WWW, types: {} });
  const page = await browser.context.newPage();
  t.after(() => page.close());
  await page.route('**/backing_chain_bg.wasm', (r) => r.fulfill({ status: 404, body: 'nope' }));
  await page.goto(`${origin}/`);
  const err = await page.locator('backing-chain-editor').evaluate((e) => e.ready.then(() => null, (x) => x.kind));
  assert.equal(err, 'http');
  assert.match(await page.locator('backing-chain-editor .status').innerText(), /404[\s\S]*register\(\{ wasmUrl \}\)/);
});
