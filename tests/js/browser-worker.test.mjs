// Dropped files are probed in a Web Worker (www/probe-worker.js); a host's
// reader (addImage) and pages where no worker may start probe on the page's
// thread. Chromium, real qemu-img images, trusted CDP drops; qemu-img info is
// the oracle for what each image is, and the two paths must agree byte for
// byte on the forest.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../support/server.mjs';
import { launch, dropFiles } from '../support/browser.mjs';
import { haveQemuImg, makeChain, qemuImg, qemuInfo } from '../support/images.mjs';

const skip = haveQemuImg() ? false : 'qemu-img is not installed';
const STRICT = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; connect-src 'self'; img-src 'self' data:";

let browser;
let dir;
/** @type {Map<string, import('node:http').Server>} */
const servers = new Map();
let files;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'bce-worker-'));
  const chain = makeChain(dir);
  // More than a batch of results (the worker sends them in batches), other
  // formats, and a raw file.
  const more = [];
  for (let i = 0; i < 150; i++) {
    const p = join(dir, `o${String(i).padStart(3, '0')}.qcow2`);
    qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'base.qcow2', p);
    more.push(p);
  }
  for (const [name, fmt] of [['d.vmdk', 'vmdk'], ['d.vhdx', 'vhdx'], ['d.vdi', 'vdi']]) {
    qemuImg('create', '-q', '-f', fmt, join(dir, name), '64M');
    more.push(join(dir, name));
  }
  qemuImg('create', '-q', '-f', 'raw', join(dir, 'd.raw'), '1M');
  more.push(join(dir, 'd.raw'));
  // A qcow2 (512-byte clusters: it fits in 32 KiB) over an ISO 9660 image:
  // its 7 bytes at 32768 say CD001, read in the same read as its header.
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', join(dir, 'small.qcow2'), '1M');
  const poly = Buffer.alloc(64 * 2048);
  poly[32768] = 1;
  poly.write('CD001\x01', 32769, 'latin1');
  poly[34816] = 255;
  poly.write('CD001\x01', 34817, 'latin1');
  readFileSync(join(dir, 'small.qcow2')).copy(poly, 0);
  writeFileSync(join(dir, 'poly.iso'), poly);
  rmSync(join(dir, 'small.qcow2'));
  more.unshift(join(dir, 'poly.iso'));
  files = [chain.top, chain.mid, chain.base, ...more];
  browser = await launch();
});

after(async () => {
  await browser?.close();
  for (const s of servers.values()) s.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The page served with a Content-Security-Policy (or none). @param {string | null} csp */
async function originFor(csp) {
  const key = String(csp);
  if (!servers.has(key)) servers.set(key, await startServer(csp ? { headers: { 'content-security-policy': csp } } : {}));
  return `http://127.0.0.1:${servers.get(key).address().port}`;
}

/** A fresh page; the workers it starts and its errors are noted. */
async function openPage(t, csp = null) {
  const page = await browser.context.newPage();
  const errors = [];
  const workers = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('worker', (w) => workers.push(new URL(w.url()).pathname));
  t.after(() => page.close());
  await page.goto(`${await originFor(csp)}/`);
  await page.locator('backing-chain-editor').evaluate((e) => e.ready);
  return { page, errors, workers };
}

/** Drop `paths` and wait for all of them in the forest. */
async function dropAll(page, paths) {
  await dropFiles(page, 'backing-chain-editor', paths);
  await page.waitForFunction((n) => document.querySelector('backing-chain-editor').forest?.images.length === n, paths.length, { timeout: 60_000 });
  return page.locator('backing-chain-editor').evaluate((e) => e.forest);
}

/** What qemu-img says of each file: format, virtual size, backing. */
function oracle(paths) {
  return Object.fromEntries(
    paths.map((p) => {
      const i = qemuInfo(p);
      return [p.slice(p.lastIndexOf('/') + 1), { format: i.format, size: i['virtual-size'], backing: i['backing-filename'] ?? null }];
    }),
  );
}

/** The same facts from the forest. */
function facts(forest) {
  return Object.fromEntries(forest.images.map((im) => [im.filename, { format: im.format, size: im['virtual-size'], backing: im['backing-filename'] ?? null }]));
}

test('a drop is probed in the worker, and the forest is the one the page-thread probe gives (worker-src none), byte for byte', { skip }, async (t) => {
  const a = await openPage(t);
  const viaWorker = await dropAll(a.page, files);
  assert.deepEqual(a.workers, ['/probe-worker.js']);
  assert.deepEqual(a.errors, []);

  const b = await openPage(t, "worker-src 'none'");
  const here = await dropAll(b.page, files);
  assert.deepEqual(b.errors, []);
  assert.deepEqual(viaWorker, here);

  // What qemu-img says of every file (the raw file: qemu-img reports raw too).
  assert.deepEqual(facts(viaWorker), oracle(files));
  const names = (f) => f.chains.find((c) => f.images[c.top].filename === 'top.qcow2').layers.map((i) => f.images[i].filename);
  assert.deepEqual(names(viaWorker), ['top.qcow2', 'mid.qcow2', 'base.qcow2']);
  // The images come out in the order dropped, whatever order the probes ended in.
  assert.deepEqual(viaWorker.images.map((im) => im.filename), files.map((p) => p.slice(p.lastIndexOf('/') + 1)));
  // Only the header bytes were read (and what a qcow2 needs beyond: 7 bytes at 32768).
  for (const im of viaWorker.images) assert.ok(im['bytes-read'] <= 16 << 10, `${im.filename}: ${im['bytes-read']} bytes`);
  // The ISO descriptor behind the qcow2 header, read with it in one read: a second format.
  const poly = viaWorker.images.find((im) => im.filename === 'poly.iso');
  assert.equal(poly['bytes-read'], 4096 + 7);
  assert.ok(poly.diagnostics.some((d) => d.code === 'multiple-formats' && /CD001/.test(d.message)), JSON.stringify(poly.diagnostics));
});

test("under a strict CSP (script-src 'self' 'wasm-unsafe-eval', no worker-src) the worker starts from 'self' and probes", { skip }, async (t) => {
  const { page, errors, workers } = await openPage(t, STRICT);
  const forest = await dropAll(page, files.slice(0, 3));
  assert.deepEqual(workers, ['/probe-worker.js']);
  assert.deepEqual(errors, []);
  assert.deepEqual(facts(forest), oracle(files.slice(0, 3)));
  assert.equal(forest.chains.length, 1);
  assert.equal(forest.chains[0].status, 'ok');
});

test("a host's reader (addImage) is called on the page's thread while dropped files go to the worker", { skip }, async (t) => {
  const { page, errors, workers } = await openPage(t);
  const [top, mid, base] = files;
  // The base through a reader over bytes the page holds (as Cockpit's dd does), the rest dropped.
  const bytes = [...(await import('node:fs')).readFileSync(base)];
  await page.evaluate((b) => {
    const data = Uint8Array.from(b);
    window.__calls = [];
    const el = document.querySelector('backing-chain-editor');
    window.__added = el.addImage('base.qcow2', async (o, l) => {
      window.__calls.push([o, l]);
      return data.slice(o, o + l);
    }, { size: data.length });
  }, bytes);
  await dropFiles(page, 'backing-chain-editor', [top, mid]);
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').forest?.images.length === 3, null, { timeout: 60_000 });
  const calls = await page.evaluate(() => window.__calls);
  // A host's reader is asked for the ranges as the core asks (its first
  // round: the 4 KiB header and the 7 bytes at 32768), together.
  assert.deepEqual(calls, [[0, 4096], [32768, 7]]);
  assert.deepEqual(workers, ['/probe-worker.js']);
  const forest = await page.locator('backing-chain-editor').evaluate((e) => e.forest);
  const c = forest.chains.find((x) => forest.images[x.top].filename === 'top.qcow2');
  assert.deepEqual(c.layers.map((i) => forest.images[i].filename), ['top.qcow2', 'mid.qcow2', 'base.qcow2']);
  assert.equal(c.status, 'ok');
  // The core used only the ranges it asked for.
  assert.equal(forest.images.find((im) => im.filename === 'base.qcow2')['bytes-read'], 4096 + 7);
  // With `span`, the ranges of a round within it are one call; the image is the same.
  const again = await page.evaluate(async (b) => {
    const data = Uint8Array.from(b);
    const calls = [];
    const el = document.querySelector('backing-chain-editor');
    await el.addImage('base-again.qcow2', async (o, l) => {
      calls.push([o, l]);
      return data.slice(o, o + l);
    }, { size: data.length, span: 65536 });
    const f = el.forest;
    const [x, y] = ['base.qcow2', 'base-again.qcow2'].map((n) => f.images.find((im) => im.filename === n));
    return { calls, same: JSON.stringify({ ...x, filename: '' }) === JSON.stringify({ ...y, filename: '' }) };
  }, bytes);
  assert.deepEqual(again.calls, [[0, 32768 + 7]]);
  assert.ok(again.same);
  assert.deepEqual(errors, []);
});

test('a file changed on disk after it was picked (its File refuses reads) is shown as unreadable; the others are probed', { skip }, async (t) => {
  const gone = mkdtempSync(join(dir, 'gone-'));
  mkdirSync(gone, { recursive: true });
  const keep = join(gone, 'keep.qcow2');
  const lost = join(gone, 'lost.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', keep, '1G');
  qemuImg('create', '-q', '-f', 'qcow2', lost, '1G');
  const { page, errors, workers } = await openPage(t);
  await page.evaluate(() => {
    const i = document.createElement('input');
    i.type = 'file';
    i.multiple = true;
    i.id = 'pick';
    document.body.append(i);
  });
  await page.setInputFiles('#pick', [keep, lost]);
  // Changed after the File was made: Chromium refuses to read it (NotReadableError).
  await new Promise((ok) => setTimeout(ok, 1100));
  appendFileSync(lost, Buffer.alloc(4096));
  await page.evaluate(() => document.querySelector('backing-chain-editor').addFiles(document.getElementById('pick').files));
  const forest = await page.locator('backing-chain-editor').evaluate((e) => e.forest);
  assert.deepEqual(workers, ['/probe-worker.js']);
  const by = Object.fromEntries(forest.images.map((im) => [im.filename, im]));
  assert.equal(by['keep.qcow2'].format, 'qcow2');
  assert.equal(by['keep.qcow2']['virtual-size'], qemuInfo(keep)['virtual-size']);
  assert.match(by['lost.qcow2'].error, /^cannot read: /);
  const tree = (await page.locator('backing-chain-editor').locator('[role=tree]').allInnerTexts()).join('\n');
  assert.match(tree, /lost\.qcow2[\s\S]*unreadable/);
  assert.deepEqual(errors, []);
});

test('a tree of 150 chains shows its first screenful at once, the rest in later tasks; End reaches the last chain before those tasks ran', { skip }, async (t) => {
  const { page, errors } = await openPage(t);
  await page.evaluate(() => {
    const i = document.createElement('input');
    i.type = 'file';
    i.multiple = true;
    i.id = 'pick';
    document.body.append(i);
  });
  await page.setInputFiles('#pick', files);
  const got = await page.evaluate(async () => {
    const el = document.querySelector('backing-chain-editor');
    const tree = el.shadowRoot.querySelector('ul[role=tree]');
    await el.addFiles(document.getElementById('pick').files);
    // Resolved once the forest is rendered; the later tasks have not run yet.
    const count = () => tree.querySelectorAll(':scope > li[role=treeitem]').length;
    const first = count();
    const top = tree.querySelector('li[role=treeitem]');
    top.focus();
    top.dispatchEvent(new KeyboardEvent('keydown', { key: 'End', bubbles: true, composed: true }));
    const focused = el.shadowRoot.activeElement;
    const visible = [...tree.querySelectorAll('li[role=treeitem]:not([hidden])')];
    return { first, all: count(), focusedIsLast: focused === visible[visible.length - 1], lastName: focused?.querySelector('.name')?.textContent, chains: el.forest.chains.length };
  });
  assert.ok(got.first >= 40 && got.first < got.all, JSON.stringify(got));
  assert.ok(got.focusedIsLast, JSON.stringify(got));
  // Every chain's top is in the tree once End needed it.
  const tops = await page.locator('backing-chain-editor').evaluate((el) => el.shadowRoot.querySelectorAll('ul[role=tree] > li[aria-level="1"]').length);
  assert.equal(tops, got.chains);
  // The last chain in the order given (chains without errors keep it): the last dropped file.
  assert.equal(got.lastName, 'd.raw');
  assert.deepEqual(errors, []);
});
