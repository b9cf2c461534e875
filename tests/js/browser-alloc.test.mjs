// Inside the layers, in Chromium (issue 17, page and element): real qcow2
// images made by qemu-img and written with qemu-io at each level of a chain
// of three, dropped with CDP; the element's allocation() / chainMap() figures
// against qemu-img map / measure / check on the same files, the bars drawn in
// proportion, progress events, cancel (an AbortSignal, and the view's Cancel
// button) with a host's custom reader that counts what it is asked for;
// check lines and check() for broken images (one with a hostile name) and a
// raw image (not checked, as qemu-img), axe-core.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync, statSync, openSync, readSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../support/server.mjs';
import { corePanic, launch, dropFiles, dropText, makeChain, openElementPage } from '../support/browser.mjs';
import { haveQemuImg, haveTool, layerOracle, qemuImg } from '../support/images.mjs';

const skip = haveQemuImg() && haveTool('qemu-io') ? false : 'qemu-img or qemu-io is not installed';
const EL = 'backing-chain-editor';
const MiB = 1024 * 1024;

let server;
let origin;
let browser;
let dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bce-alloc-'));
  server = await startServer();
  origin = `http://127.0.0.1:${server.address().port}`;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const openPage = (t) => openElementPage(browser, origin + '/', t);

function qemuIo(path, ...cmds) {
  execFileSync('qemu-io', ['-f', 'qcow2', ...cmds.flatMap((c) => ['-c', c]), path], { stdio: 'ignore' });
}

/** A chain of three with data at each level (and zeroes, a compressed write, a discard). */
function makeThree(name) {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  const p = (n) => join(d, n);
  qemuImg('create', '-q', '-f', 'qcow2', p('base.qcow2'), '64M');
  qemuIo(p('base.qcow2'), 'write -P 0x11 0 8M', 'write -c -P 0x44 40M 256k');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', p('mid.qcow2'), '64M');
  qemuIo(p('mid.qcow2'), 'write -P 0x22 8M 8M', 'write -z 2M 1M', 'discard 0 64k');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', p('top.qcow2'), '64M');
  qemuIo(p('top.qcow2'), 'write -P 0x33 16M 4M', 'write -P 0x55 1M 512k');
  return { d, p, names: ['top.qcow2', 'mid.qcow2', 'base.qcow2'] };
}


function qemuCheck(path) {
  try {
    return JSON.parse(execFileSync('qemu-img', ['check', '--output=json', path], { encoding: 'utf8' }));
  } catch (e) {
    return JSON.parse(e.stdout);
  }
}

const CHECK_KEYS = ['check-errors', 'corruptions', 'leaks', 'image-end-offset', 'total-clusters', 'allocated-clusters', 'fragmented-clusters', 'compressed-clusters'];

test('allocation() and chainMap() of a dropped chain of three give qemu-img map, measure and check figures, with progress, reading a small fraction', { skip }, async (t) => {
  const { p, names } = makeThree('three');
  const { page, events } = await openPage(t);
  await dropFiles(page, EL, names.map(p));
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('li[role=treeitem][data-image]').length >= 3);
  const got = await page.locator(EL).evaluate(async (el) => {
    const seen = [];
    const on = (e) => seen.push(e.detail);
    el.addEventListener('backing-chain-editor-progress', on);
    const chain = await el.chainMap('top.qcow2', { check: true });
    const alone = await el.allocation('mid.qcow2', { check: true });
    el.removeEventListener('backing-chain-editor-progress', on);
    return { chain, alone, seen };
  });
  // The map and measure of the chain: qemu-img's, entry for entry.
  assert.deepEqual(got.chain.map, JSON.parse(qemuImg('map', '--output=json', p('top.qcow2'))));
  assert.deepEqual(got.chain.measure, JSON.parse(qemuImg('measure', '--output=json', '-O', 'qcow2', p('top.qcow2'))));
  assert.deepEqual(got.chain.layers.map((l) => l.image), names);
  // The summary: each depth's share is what qemu-img map says that depth provides.
  const qmap = got.chain.map;
  for (const pr of got.chain.summary.provides) {
    assert.equal(pr.bytes, qmap.filter((e) => e.present && e.depth === pr.depth).reduce((s, e) => s + e.length, 0), `depth ${pr.depth}`);
  }
  assert.equal(got.chain.summary['never-written'], qmap.filter((e) => !e.present).reduce((s, e) => s + e.length, 0));
  // Commit of top into mid copies what top holds (data and zeroes): what its layer alone maps as present.
  const topAlone = layerOracle(p('top.qcow2'));
  assert.equal(got.chain.commit.length, 2);
  assert.equal(got.chain.commit[0], topAlone.data + topAlone.compressed + topAlone.zero);
  // Each layer alone: allocation by kind as qemu-img map of the layer with its backing cut; check as qemu-img check.
  let read = 0;
  let files = 0;
  for (const [i, n] of names.entries()) {
    const { layer, bytesRead } = got.chain.layers[i];
    const a = layer.allocation;
    const q = layerOracle(p(n));
    for (const k of ['data', 'compressed', 'zero', 'unallocated']) assert.equal(a[k], q[k], `${n} ${k}`);
    assert.equal(a['virtual-size'], 64 * MiB);
    const qc = qemuCheck(p(n));
    for (const k of CHECK_KEYS) assert.equal(layer.check[k], qc[k], `${n} check ${k}`);
    read += bytesRead;
    files += statSync(p(n)).size;
  }
  assert.deepEqual(got.alone.allocation, got.chain.layers[1].layer.allocation);
  // A small fraction of the files is read.
  assert.ok(read < files * 0.05, `read ${read} of ${files}`);
  // Progress: every image reported, totals known before the tables are read, the last report complete.
  for (const n of names) {
    const mine = got.seen.filter((s) => s.image === n);
    assert.ok(mine.length >= 2, `${n}: ${mine.length} progress events`);
    assert.ok(mine.some((s) => s.total > 0 && s.done < s.total), `${n}: a total known before all was read`);
    const last = mine.at(-1);
    assert.equal(last.done, last.total);
  }
  assert.deepEqual(events.errors, []);
});

test('the view: Show allocation draws a bar per layer in proportion, the chain map strip, the summary, estimates and check lines', { skip }, async (t) => {
  const { p, names } = makeThree('view');
  const { page, events } = await openPage(t);
  await dropFiles(page, EL, names.map(p));
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('li[role=treeitem][data-image]').length >= 3);
  await page.locator(`${EL} li[data-image] > .row >> text=top.qcow2`).click();
  await page.locator(`${EL} .details button.show-alloc`).click();
  await page.locator(`${EL} .alloc-layers`).waitFor();
  const alloc = page.locator(`${EL} .details .alloc`);
  // One bar per layer, top first; the data segment's share of the bar is the data's share of the disk.
  const rows = alloc.locator('.alloc-layers > li');
  assert.equal(await rows.count(), 3);
  for (const [i, n] of names.entries()) {
    const row = rows.nth(i);
    assert.equal(await row.locator('.name').innerText(), n);
    const q = layerOracle(p(n));
    const bar = (await row.locator('.abar').boundingBox()).width;
    const data = (await row.locator('.abar .a-data').boundingBox()).width;
    assert.ok(Math.abs(data / bar - q.data / (64 * MiB)) < 0.01, `${n}: ${data}/${bar} vs ${q.data}`);
    // The figures as text for screen readers.
    const label = await row.locator('.abar').getAttribute('aria-label');
    assert.ok(label.includes(`allocated ${q.data / MiB}.0 MiB`) || label.includes(`allocated ${q.data / MiB} MiB`), label);
    assert.match(label, /unallocated .* %\)/);
  }
  // The compressed write of the base is drawn.
  assert.ok((await rows.nth(2).locator('.a-compressed').boundingBox()).width > 0);
  // The chain map strip: a segment per qemu-img map entry, in proportion.
  const qmap = JSON.parse(qemuImg('map', '--output=json', p('top.qcow2')));
  const segs = alloc.locator('.mapstrip > span');
  assert.equal(await segs.count(), qmap.length);
  const strip = (await alloc.locator('.mapstrip').boundingBox()).width;
  const widest = qmap.reduce((b, e, i) => (e.length > qmap[b].length ? i : b), 0);
  const w = (await segs.nth(widest).boundingBox()).width;
  assert.ok(Math.abs(w / strip - qmap[widest].length / (64 * MiB)) < 0.01);
  assert.equal(await segs.nth(widest).getAttribute('data-depth'), String(qmap[widest].depth));
  // Summary, measure, commit, check.
  const text = await alloc.innerText();
  assert.match(text, /top\.qcow2 \(top\) provides 4\.5 MiB/);
  assert.match(text, /Metadata read\s+.* of .* of files \(\d\.\d %\)/);
  assert.match(text, /never written/);
  const qm = JSON.parse(qemuImg('measure', '--output=json', '-O', 'qcow2', p('top.qcow2')));
  assert.ok(text.includes(`required ${(qm.required / MiB).toFixed(1)} MiB`) || text.includes(`(${qm.required.toLocaleString('en-US')} bytes)`), text);
  assert.match(text, /qemu-img commit of top\.qcow2\s+copies/);
  assert.equal(await alloc.locator('.diags.check li').count(), 3);
  assert.match(text, /no errors were found/);
  // axe-core over the element with the results shown: no serious or critical violation.
  const { createRequire } = await import('node:module');
  await page.evaluate(readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8'));
  const found = await page.evaluate(async () => {
    const r = await globalThis.axe.run(document.querySelector('backing-chain-editor'), { resultTypes: ['violations'] });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
  });
  assert.deepEqual(found, []);
  // Dropping mid.qcow2 again (a new file under the same name): what was read through the old one is dropped.
  await page.evaluate(() => window.scrollTo(0, 0));
  await dropFiles(page, EL, [p('mid.qcow2')]);
  await page.waitForFunction(() => !document.querySelector('backing-chain-editor').shadowRoot.querySelector('.details .alloc-layers'));
  assert.equal(await page.locator(`${EL} .details button.show-alloc`).innerText(), 'Show allocation (3 layers)');
  assert.deepEqual(events.errors, []);
});

test('a host reader: allocation() through it, an AbortSignal cancels (rejects, nothing more is read), and the view’s Cancel button', { skip }, async (t) => {
  const { p } = makeThree('host');
  const { page, events } = await openPage(t);
  // The host's channel: reads served from the file here, counted.
  const log = [];
  let slow = 0;
  await page.exposeFunction('hostRead', async (name, offset, length) => {
    log.push([name, offset, length]);
    if (slow) await new Promise((r) => setTimeout(r, slow));
    const fd = openSync(p(name), 'r');
    try {
      const buf = Buffer.alloc(length);
      const n = readSync(fd, buf, 0, length, offset);
      return buf.subarray(0, n).toString('base64');
    } finally {
      closeSync(fd);
    }
  });
  await page.locator(EL).evaluate(async (el, sizes) => {
    const reader = (name) => async (off, len) => Uint8Array.from(atob(await window.hostRead(name, off, len)), (c) => c.charCodeAt(0));
    for (const [n, size] of Object.entries(sizes)) await el.addImage(n, reader(n), { size });
  }, Object.fromEntries(['top.qcow2', 'mid.qcow2', 'base.qcow2'].map((n) => [n, statSync(p(n)).size])));
  // A full walk through the host's reader equals qemu-img's figures.
  log.length = 0;
  const a = await page.locator(EL).evaluate((el) => el.allocation('top.qcow2', { check: true }));
  const q = layerOracle(p('top.qcow2'));
  for (const k of ['data', 'compressed', 'zero', 'unallocated']) assert.equal(a.allocation[k], q[k], k);
  const qc = qemuCheck(p('top.qcow2'));
  for (const k of CHECK_KEYS) assert.equal(a.check[k], qc[k], `check ${k}`);
  const full = log.length;
  assert.ok(full >= 2 && log.every(([n]) => n === 'top.qcow2'));
  // Cancel with an AbortSignal on the first progress report: the promise rejects, and nothing more is read after.
  log.length = 0;
  slow = 30;
  const r = await page.locator(EL).evaluate(async (el) => {
    const ctl = new AbortController();
    el.addEventListener('backing-chain-editor-progress', () => ctl.abort(), { once: true });
    try {
      await el.chainMap('top.qcow2', { check: true, signal: ctl.signal });
      return { ok: true };
    } catch (e) {
      return { ok: false, name: e.name };
    }
  });
  assert.deepEqual(r, { ok: false, name: 'AbortError' });
  const atReject = log.length;
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(log.length, atReject, 'no read after the walk was cancelled');
  assert.ok(atReject < full, `${atReject} reads of ${full}`);
  // The view: Show allocation, the progress bar and Cancel; the rest stays usable.
  slow = 150;
  log.length = 0;
  await page.locator(`${EL} li[data-image] > .row >> text=top.qcow2`).click();
  await page.locator(`${EL} .details button.show-alloc`).click();
  await page.locator(`${EL} .details .alloc-progress progress`).waitFor();
  // Before the tables are read, what will be read is said: "will read X of <the file's size>".
  const fileSize = statSync(p('top.qcow2')).size;
  await page.waitForFunction(() => /will read/.test(document.querySelector('backing-chain-editor').shadowRoot.querySelector('.alloc-progress .meta')?.textContent ?? ''));
  const said = await page.locator(`${EL} .details .alloc-progress .meta`).innerText();
  assert.ok(said.includes(`of ${(fileSize / MiB).toFixed(1)} MiB`), said);
  assert.ok(await page.locator(`${EL} .details .alloc-progress progress`).evaluate((b) => b.max > 1 && b.value <= b.max));
  // The rest stays usable meanwhile: another image's details, then back to the reading one.
  await page.locator(`${EL} li[data-image] > .row >> text=mid.qcow2`).click();
  assert.equal(await page.locator(`${EL} .details h3`).innerText(), 'mid.qcow2');
  assert.ok(await page.locator(`${EL} .details button.show-alloc`).isVisible());
  await page.locator(`${EL} li[data-image] > .row >> text=top.qcow2`).click();
  await page.locator(`${EL} .details button.cancel-alloc`).click();
  await page.locator(`${EL} .details .alloc >> text=Cancelled.`).waitFor();
  const afterCancel = log.length;
  await new Promise((res) => setTimeout(res, 400));
  assert.equal(log.length, afterCancel);
  assert.ok(await page.locator(`${EL} .details button.show-alloc`).isVisible());
  assert.deepEqual(events.errors, []);
});

/** qcow2 surgery as tests/meta.rs does it: 64 KiB clusters, a fresh image with 4 data clusters. */
const OFF = 0x00ff_ffff_ffff_fe00n;
function victim(d, name) {
  qemuImg('create', '-q', '-f', 'qcow2', join(d, name), '4M');
  qemuIo(join(d, name), 'write -P 1 0 256k');
  return join(d, name);
}
const be64 = (b, at) => b.readBigUInt64BE(Number(at));
function l2Entry(b, j) {
  const l2 = be64(b, be64(b, 40)) & OFF;
  return l2 + BigInt(j) * 8n;
}
function refcountAt(b, k) {
  const rt = be64(b, 48);
  const block = be64(b, rt + (k >> 15n) * 8n) & ~0x1ffn;
  return block + (k & 0x7fffn) * 2n;
}

test('check results in the view: a leaked cluster and a refcount of 0 as qemu-img check counts them, with its advice', { skip }, async (t) => {
  const d = join(dir, 'broken');
  mkdirSync(d, { recursive: true });
  // A leaked cluster: the L2 entry cleared after the write.
  const LEAK = '<img src=x onerror=alert(1)>leak.qcow2';
  const leak = victim(d, LEAK);
  let b = readFileSync(leak);
  b.writeBigUInt64BE(0n, Number(l2Entry(b, 1)));
  writeFileSync(leak, b);
  // Refcount 0 for a used cluster.
  const rc0 = victim(d, 'rc0.qcow2');
  b = readFileSync(rc0);
  const host = be64(b, l2Entry(b, 2)) & OFF;
  b.writeUInt16BE(0, Number(refcountAt(b, host >> 16n)));
  writeFileSync(rc0, b);
  const { page, events } = await openPage(t);
  await dropFiles(page, EL, [leak, rc0]);
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('li[role=treeitem][data-image]').length >= 2);
  for (const [n, sev, repair] of [
    [LEAK, 'warning', '-r leaks'],
    ['rc0.qcow2', 'error', '-r all'],
  ]) {
    const q = qemuCheck(join(d, n));
    const got = await page.locator(EL).evaluate((el, n) => el.allocation(n, { check: true }), n);
    for (const k of CHECK_KEYS) assert.equal(got.check[k], q[k], `${n} ${k}`);
    assert.deepEqual(await page.locator(EL).evaluate((el, n) => el.check(n), n), got.check);
    await page.locator(`${EL} li[data-image] > .row .name`, { hasText: n }).click();
    await page.locator(`${EL} .details button.show-alloc`).click();
    const line = page.locator(`${EL} .details .alloc .diags.check li[data-code=check]`);
    await line.waitFor();
    assert.ok(await line.evaluate((li, sev) => li.classList.contains(sev), sev), `${n}: ${sev}`);
    const text = await line.innerText();
    if (q.leaks) assert.ok(text.includes(`${q.leaks} leaked cluster`), text);
    if (q.corruptions) assert.ok(text.includes(`${q.corruptions} corruption`), text);
    assert.ok(text.includes(repair), text);
    assert.ok((await line.locator('.problems li').count()) >= 1);
    // A name from a file is text: shown as typed, no element made of it.
    assert.ok(text.includes(n));
    assert.equal(await page.locator(`${EL} .details .alloc img`).count(), 0);
    assert.equal(await page.locator(`${EL} .details .alloc-layers .name`).first().innerText(), n);
  }
  // A raw image: qemu-img does not check it, and check() says so.
  const raw = join(d, 'plain.raw');
  qemuImg('create', '-q', '-f', 'raw', raw, '1M');
  assert.throws(() => execFileSync('qemu-img', ['check', '-f', 'raw', raw], { stdio: 'pipe' }), /does not support checks/);
  await page.evaluate(() => window.scrollTo(0, 0));
  await dropFiles(page, EL, [raw]);
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('li[role=treeitem][data-image]').length >= 3);
  const r = await page.locator(EL).evaluate((el) => el.check('plain.raw').then(() => 'resolved', (e) => e.message));
  assert.match(r, /raw images are not checked/);
  assert.deepEqual(events.errors, []);
});

// ---- The on-demand module (issue 18): a second wasm module, loaded when the user edits, audits or walks ----

const META = /\/pkg\/backing_chain_meta(_bg\.wasm|\.js)(\?|$)/;
const ON_DEMAND = /\/(editor-meta|editor-alloc|editor-layer-form|editor-details)\.js$/;

/** A page whose every request is counted from the start (openElementPage listens too late); `setup` runs before it loads (routes). */
async function countedPage(t, url = origin + '/', setup = async (/** @type {any} */ _page) => {}) {
  const page = await browser.context.newPage();
  const events = { errors: [], requests: [] };
  page.on('pageerror', (e) => events.errors.push(e.message));
  page.on('request', (r) => events.requests.push(new URL(r.url()).pathname + new URL(r.url()).search));
  t.after(() => page.close());
  await setup(page);
  await page.goto(url);
  await page.locator(EL).evaluate((e) => e.ready);
  return { page, events };
}

/** allocation() of each name: the figures by kind, or the error's name, kind and message. */
function allocationsOf(page, names) {
  return page.locator(EL).evaluate(async (el, names) => {
    const out = {};
    for (const n of names) {
      try {
        const { allocation: a } = await el.allocation(n);
        out[n] = { data: a.data, compressed: a.compressed, zero: a.zero, unallocated: a.unallocated };
      } catch (e) {
        out[n] = { error: e.name, kind: e.kind, message: e.message, detail: e.detail };
      }
    }
    return out;
  }, names);
}

/** The element still works: the tree has `n` images, the XML names the top, no alert from the core. */
async function stillWorks(page, n, top) {
  await page.waitForFunction((n) => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('li[role=treeitem][data-image]').length >= n, n);
  const xml = await page.locator(EL).evaluate((el) => el.getXml({ layout: 'nested' }));
  assert.match(xml, new RegExp(`<source file='[^']*${top.replace('.', '\\.')}'`));
  assert.notEqual(await page.locator(EL).evaluate((el) => el.dataset.wasm ?? ''), 'recovered');
}

/** A domain XML whose one disk is top.qcow2 (its chain not stated: validate marks it). */
const DOMAIN = "<domain type='kvm'><name>vm</name><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='top.qcow2'/><target dev='vda' bus='virtio'/></disk></devices></domain>";

test('a page that shows data loads no more than first paint: images and a domain XML dropped, the tree, the XML, the chains table and its differences drawn, a backing choice no stated chain follows made and taken back, and the on-demand module is not fetched; the first allocation fetches it once, its figures are qemu-img’s', { skip }, async (t) => {
  const { p, names } = makeThree('split-load');
  const { page, events } = await countedPage(t);
  await page.waitForLoadState('networkidle');
  assert.ok(events.requests.includes('/pkg/backing_chain_bg.wasm'), events.requests.join(' '));
  // Images and a domain XML dropped, shown in validate mode (the table's "images say" column, its differences marked).
  await dropFiles(page, EL, names.map(p));
  await stillWorks(page, 3, 'top.qcow2');
  await dropText(page, EL, DOMAIN);
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').domainXml.includes('<name>vm</name>'));
  // The XML pane populates it from the images.
  assert.match(await page.locator(EL).evaluate((el) => el.getXml({ layout: 'nested' })), /<name>vm<\/name>[\s\S]*top\.qcow2[\s\S]*mid\.qcow2[\s\S]*base\.qcow2/);
  await page.locator(EL).evaluate((el) => (el.mode = 'validate'));
  await page.waitForFunction(() => [...document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('.chains [data-disk="0"] th')].some((th) => th.textContent === 'The images say'));
  // The chain is not stated in the XML: its layers below the source are marked.
  assert.ok((await page.locator(`${EL} .chains [data-disk="0"] td.images`).count()) >= 2);
  // A backing choice that no chain of the domain XML follows (its chain is not stated) does not need it either.
  await page.locator(EL).evaluate(async (el) => {
    await el.setBacking('top.qcow2', 'base.qcow2');
    await el.setBacking('top.qcow2', null);
  });
  assert.deepEqual(await page.locator(EL).evaluate((el) => el.forest.chains.map((c) => c.layers.length)), [3]);
  await page.waitForLoadState('networkidle');
  assert.deepEqual(events.requests.filter((u) => META.test(u)), [], 'the on-demand module is not fetched to show data');
  assert.deepEqual(events.requests.filter((u) => ON_DEMAND.test(u)), [], 'nor the metadata views');
  // Selecting an image shows its details (their module comes then) and the details' allocation section: its view module comes, not the wasm.
  await page.locator(`${EL} li[data-image] > .row >> text=top.qcow2`).click();
  await page.locator(`${EL} .details button.show-alloc`).waitFor();
  assert.deepEqual(events.requests.filter((u) => ON_DEMAND.test(u)), ['/editor-details.js', '/editor-alloc.js']);
  assert.deepEqual(events.requests.filter((u) => META.test(u)), []);
  // The first walk: the glue and the wasm of the on-demand module, once each.
  const got = await allocationsOf(page, names);
  for (const n of names) assert.deepEqual(got[n], layerOracle(p(n)), n);
  await page.locator(`${EL} .details button.show-alloc`).click();
  await page.locator(`${EL} .alloc-layers`).waitFor();
  assert.equal(await page.locator(`${EL} .details .alloc-layers > li`).count(), 3);
  assert.deepEqual(events.requests.filter((u) => META.test(u)).sort(), ['/pkg/backing_chain_meta.js', '/pkg/backing_chain_meta_bg.wasm']);
  assert.equal(events.requests.filter((u) => u === '/editor-meta.js').length, 1);
  assert.deepEqual(events.errors, []);
});

test('the on-demand module answers 404: allocation() rejects with a WasmLoadError that says so, the tree and XML keep working, a later try loads it', { skip }, async (t) => {
  const { p, names } = makeThree('split-404');
  const g = makeChain(join(dir, 'split-404'), { base: 'b2.qcow2', mid: 'm2.qcow2', top: 't2.qcow2' });
  let refuse = true;
  const { page, events } = await countedPage(t, undefined, (page) => page.route('**/pkg/backing_chain_meta_bg.wasm', (r) => (refuse ? r.fulfill({ status: 404, body: 'nope' }) : r.continue())));
  await dropFiles(page, EL, names.map(p));
  await stillWorks(page, 3, 'top.qcow2');
  const got = await allocationsOf(page, ['top.qcow2']);
  assert.equal(got['top.qcow2'].error, 'WasmLoadError');
  assert.equal(got['top.qcow2'].kind, 'http');
  assert.match(got['top.qcow2'].message, /^The on-demand module \(edits, audit, allocation, map, check\) could not be fetched: HTTP 404 for http:\/\/[^ ]+\/pkg\/backing_chain_meta_bg\.wasm\.$/);
  assert.match(got['top.qcow2'].detail, /register\(\{ metaWasmUrl \}\)/);
  // check() and chainMap() too.
  const others = await page.locator(EL).evaluate(async (el) => Promise.all([el.check('top.qcow2'), el.chainMap('top.qcow2')].map((x) => x.then(() => 'resolved', (e) => e.name))));
  assert.deepEqual(others, ['WasmLoadError', 'WasmLoadError']);
  // The view says it in its alert, in words.
  await page.locator(`${EL} li[data-image] > .row >> text=top.qcow2`).click();
  await page.locator(`${EL} .details button.show-alloc`).click();
  const alert = page.locator(`${EL} .details .alloc .diag.error`);
  await alert.waitFor();
  assert.match(await alert.innerText(), /Could not read the metadata: The on-demand module .* HTTP 404/);
  // Everything else keeps working: another drop, the tree, the XML.
  await page.evaluate(() => window.scrollTo(0, 0));
  await dropFiles(page, EL, [g.base, g.mid, g.top]);
  await stillWorks(page, 6, 'top.qcow2');
  assert.equal(await page.locator(EL).evaluate((el) => el.forest.chains.length), 2);
  // Served again: the next walk loads it.
  refuse = false;
  const again = await allocationsOf(page, ['mid.qcow2']);
  assert.deepEqual(again['mid.qcow2'], layerOracle(p('mid.qcow2')));
  assert.deepEqual(events.errors, []);
});

test('a Content-Security-Policy that refuses the metadata module’s URL: allocation() rejects with a WasmLoadError, the page works on', { skip }, async (t) => {
  const { p, names } = makeThree('split-csp');
  const csp = (o) => `default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src ${o}/pkg/backing_chain_bg.wasm`;
  const srv = await startServer({
    handle: (req, res, url) => {
      if (url.pathname !== '/csp.html') return false;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': csp(`http://${req.headers.host}`) });
      res.end('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>CSP</title><link rel="icon" href="data:,"><script type="module" src="/backing-chain-editor.js"></script></head><body><backing-chain-editor></backing-chain-editor></body></html>');
      return true;
    },
  });
  t.after(() => srv.close());
  const { page, events } = await countedPage(t, `http://127.0.0.1:${srv.address().port}/csp.html`);
  const violations = [];
  page.on('console', (m) => m.type() === 'error' && violations.push(m.text()));
  await dropFiles(page, EL, names.map(p));
  await stillWorks(page, 3, 'top.qcow2');
  const got = await allocationsOf(page, ['top.qcow2']);
  assert.equal(got['top.qcow2'].error, 'WasmLoadError');
  assert.equal(got['top.qcow2'].kind, 'network');
  assert.match(got['top.qcow2'].message, /^The on-demand module \(edits, audit, allocation, map, check\) could not be fetched from http:\/\/[^ ]+\/pkg\/backing_chain_meta_bg\.wasm\.$/);
  assert.match(got['top.qcow2'].detail, /Content-Security-Policy/);
  // The browser refused it (a CSP violation), it did not fail on its own.
  assert.ok(violations.some((v) => /Content Security Policy/.test(v) && v.includes('backing_chain_meta_bg.wasm')), violations.join('\n'));
  await stillWorks(page, 3, 'top.qcow2');
  assert.deepEqual(events.errors, []);
});

test('a panic in the metadata module fails the walk under way with a CorePanic, not the page’s core; the next walk gets a fresh instance', { skip }, async (t) => {
  const { p, names } = makeThree('split-panic');
  const { page, events } = await countedPage(t);
  await dropFiles(page, EL, names.map(p));
  await stillWorks(page, 3, 'top.qcow2');
  // The module's panic hook writes globalThis.backingChainMetaPanic (its own
  // global; the core's is backingChainPanic) before the wasm traps: written
  // here during a walk, as the hook does.
  const failed = await page.locator(EL).evaluate(async (el) => {
    const once = () => {
      el.removeEventListener('backing-chain-editor-progress', once);
      globalThis.backingChainMetaPanic = 'backing-chain internal error: panicked at src/meta/test.rs:1:1: test';
    };
    el.addEventListener('backing-chain-editor-progress', once);
    try {
      await el.allocation('top.qcow2');
      return 'resolved';
    } catch (e) {
      return `${e.name}: ${e.message}`;
    }
  });
  assert.equal(failed, 'CorePanic: backing-chain internal error: panicked at src/meta/test.rs:1:1: test');
  // The core is untouched: no restart, no alert, the tree and XML as before.
  await stillWorks(page, 3, 'top.qcow2');
  assert.equal(await page.locator(`${EL} .status[role=alert]`).count(), 0);
  assert.ok(!events.requests.some((u) => u.startsWith('/pkg/backing_chain.js?instance=')), 'the core was not restarted');
  // The next walk: a fresh instance (a second copy of the glue; the .wasm is not fetched again), qemu-img's figures.
  const got = await allocationsOf(page, names);
  for (const n of names) assert.deepEqual(got[n], layerOracle(p(n)), n);
  assert.deepEqual(events.requests.filter((u) => META.test(u)), ['/pkg/backing_chain_meta_bg.wasm', '/pkg/backing_chain_meta.js', '/pkg/backing_chain_meta.js?instance=2']);
  assert.deepEqual(events.errors, []);
});

test('an edit waits for the on-demand module: opening a row’s menu starts fetching it; a 404 is said on the chains table’s refusal line with a way to try the edit again, while the tree, XML and table work; edit() and audit() reject with the WasmLoadError; served again, Try again applies the edit', { skip }, async (t) => {
  const { p, names } = makeThree('split-chains');
  /** @type {() => void} */
  let release = () => {};
  const held = new Promise((ok) => (release = ok));
  let refuse = true;
  const { page, events } = await countedPage(t, undefined, (page) =>
    page.route('**/pkg/backing_chain_meta_bg.wasm', async (r) => {
      if (!refuse) return r.continue();
      await held;
      return r.fulfill({ status: 404, body: 'nope' });
    }),
  );
  await dropFiles(page, EL, names.map(p));
  await stillWorks(page, 3, 'top.qcow2');
  // The table is drawn from the core at once: no loading state, the chain's rows.
  await page.locator(`${EL} .chains [data-disk="0"] tr[data-depth]`).first().waitFor();
  assert.equal(await page.locator(`${EL} .chains [data-disk="0"] tr[data-depth]`).count(), 2); // mid and base below the source, top
  assert.equal(await page.locator(`${EL} .chains-body`).getAttribute('aria-busy'), null);
  await page.waitForLoadState('networkidle');
  assert.deepEqual(events.requests.filter((u) => META.test(u)), []);
  // Opening a row's menu: the module's wasm is asked for (held here), before any edit.
  const asked = page.waitForRequest((r) => r.url().endsWith('/pkg/backing_chain_meta_bg.wasm'));
  await page.locator(`${EL} .chains [data-disk="0"] tr[data-depth="1"] button[data-act=menu]`).click();
  await asked;
  assert.deepEqual(events.requests.filter((u) => META.test(u)), ['/pkg/backing_chain_meta_bg.wasm'], 'fetched, not instantiated (no glue yet)');
  await page.keyboard.press('Escape');
  // It fails (404); the edit the user makes (the chain no longer ends after
  // base: no empty <backingStore/>) asks again and says why, where they acted.
  release();
  assert.match(await page.locator(EL).evaluate((el) => el.getXml()), /<backingStore\/>/);
  await page.locator(`${EL} .chains [data-disk="0"] .terminator input`).click();
  const alert = page.locator(`${EL} .chains .edit-error`);
  await alert.locator('button', { hasText: 'Try again' }).waitFor();
  assert.match(await alert.innerText(), /^The edit was not applied: the chain editor could not be loaded: The on-demand module \(edits, audit, allocation, map, check\) could not be fetched: HTTP 404 for http:\/\/[^ ]+\/pkg\/backing_chain_meta_bg\.wasm\. Check that backing_chain_meta_bg\.wasm is served/);
  // Nothing changed, and the rest works: the tree, the XML, the table.
  assert.equal(await page.locator(EL).evaluate((el) => el.domainXml), '');
  await stillWorks(page, 3, 'top.qcow2');
  assert.equal(await page.locator(`${EL} .chains [data-disk="0"] tr[data-depth]`).count(), 2);
  // The public calls that need it reject with the WasmLoadError, and change nothing.
  const calls = await page.locator(EL).evaluate(async (el) => {
    const r = (x) => x.then(() => 'resolved', (e) => `${e.name} ${e.kind}`);
    return [await r(el.edit({ op: 'set-terminator', disk: 0, on: false })), await r(el.audit())];
  });
  assert.deepEqual(calls, ['WasmLoadError http', 'WasmLoadError http']);
  assert.equal(await page.locator(EL).evaluate((el) => el.domainXml), '');
  // Served again: Try again applies the edit the user made.
  refuse = false;
  await alert.locator('button', { hasText: 'Try again' }).click();
  await page.waitForFunction(() => /<disk /.test(document.querySelector('backing-chain-editor').domainXml));
  assert.doesNotMatch(await page.locator(EL).evaluate((el) => el.domainXml), /<backingStore\/>/);
  assert.equal(await alert.isHidden(), true);
  assert.equal(await page.locator(`${EL} .chains [data-disk="0"] .terminator input`).isChecked(), false);
  // And the next edit goes through edit() at once.
  const next = await page.locator(EL).evaluate((el) => el.edit({ op: 'set-terminator', disk: 0, on: true }));
  assert.match(next, /<backingStore\/>/);
  assert.deepEqual(events.errors, []);
});

test('a real panic in the on-demand module (its raw adoptChain given bytes that are not UTF-8): the page’s core is untouched, the chains table is the core’s, and the next edit and audit() run on a fresh instance', { skip }, async (t) => {
  const { p, names } = makeThree('split-chains-panic');
  const { page, events } = await countedPage(t);
  await dropFiles(page, EL, names.map(p));
  await stillWorks(page, 3, 'top.qcow2');
  await page.locator(`${EL} .chains [data-disk="0"] tr[data-depth]`).first().waitFor();
  const before = await page.locator(EL).evaluate(async (el) => (await el.audit()).report.summary);
  const errors = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  assert.match(await corePanic(page, '/pkg/backing_chain_meta.js'), /^RuntimeError: /);
  assert.match(await page.evaluate(() => String(globalThis.backingChainMetaPanic)), /^backing-chain internal error: panicked at src\/xml\//);
  // The core was not restarted; the tree, the XML and the table as before.
  await stillWorks(page, 3, 'top.qcow2');
  assert.ok(!events.requests.some((u) => u.startsWith('/pkg/backing_chain.js?instance=')), 'the core was not restarted');
  await page.locator(EL).evaluate((el) => (el.mode = 'validate'));
  await page.waitForFunction(() => [...document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('.chains [data-disk="0"] th')].some((th) => th.textContent === 'The images say'));
  assert.equal(await page.locator(`${EL} .chains [data-disk="0"] tr[data-depth]`).count(), 2);
  await page.locator(EL).evaluate((el) => (el.mode = 'populate'));
  // audit() and an edit from the table: a fresh instance, the same answers.
  assert.deepEqual(await page.locator(EL).evaluate(async (el) => (await el.audit()).report.summary), before);
  await page.locator(`${EL} .chains [data-disk="0"] .terminator input`).click();
  await page.waitForFunction(() => /<disk /.test(document.querySelector('backing-chain-editor').domainXml));
  assert.doesNotMatch(await page.locator(EL).evaluate((el) => el.domainXml), /<backingStore\/>/);
  assert.equal(await page.locator(`${EL} .chains .edit-error`).isHidden(), true);
  assert.deepEqual(events.requests.filter((u) => META.test(u)), ['/pkg/backing_chain_meta_bg.wasm', '/pkg/backing_chain_meta.js', '/pkg/backing_chain_meta.js?instance=2']);
  assert.deepEqual(events.errors, []);
});

test('the details’ backing choice starts fetching the on-demand module when focused with a domain XML (a choice a stated chain follows needs it), not without one', { skip }, async (t) => {
  const { p, names } = makeThree('split-prefetch-backing');
  const { page, events } = await countedPage(t);
  await dropFiles(page, EL, names.map(p));
  await stillWorks(page, 3, 'top.qcow2');
  const box = page.locator(`${EL} .details input[role=combobox]`);
  // Without a domain XML a backing choice is the core's alone: focusing the box fetches nothing.
  await page.locator(`${EL} li[data-image] > .row >> text=mid.qcow2`).click();
  await box.focus();
  await page.waitForLoadState('networkidle');
  assert.deepEqual(events.requests.filter((u) => META.test(u)), []);
  await box.blur();
  // With one: focusing it asks for the module's wasm, before any choice (fetched and compiled, not instantiated: no glue).
  // (Set through the element's property: a text dropped on the page now could land in the details' box.)
  await page.locator(EL).evaluate((el, d) => (el.domainXml = d), DOMAIN);
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').domainXml.includes('<name>vm</name>'));
  await page.locator(`${EL} li[data-image] > .row >> text=mid.qcow2`).click();
  const asked = page.waitForRequest((r) => r.url().endsWith('/pkg/backing_chain_meta_bg.wasm'));
  await box.focus();
  await asked;
  assert.deepEqual(events.requests.filter((u) => META.test(u)), ['/pkg/backing_chain_meta_bg.wasm']);
  assert.deepEqual(events.errors, []);
});
