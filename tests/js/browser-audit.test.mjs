// The audit page (www/audit.html) in headless Chromium: a folder of qemu-img
// images and several domain XMLs (one file holding two domains and a broken
// one) dropped with trusted CDP drag events; the picture is drawn (a
// screenshot is kept in tests/artifacts), selecting the shared base with the
// keyboard shows its users, the fix script downloads, a hostile file name
// stays text, and the page makes no request beyond its own files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../support/server.mjs';
import { launch, dropFiles, ARTIFACTS } from '../support/browser.mjs';
import { haveQemuImg, qemuImg } from '../support/images.mjs';
import { humanSize } from '../../www/render.js';

const skip = haveQemuImg() ? false : 'qemu-img is not installed';
const HOST = '/var/lib/libvirt/images';
// Chromium's directory handles skip file names with < or > (its File System
// Access name checks): the markup goes into a VM name, the file name gets
// quotes, & and $.
const HOSTILE = "it's & $z.qcow2";
const HOSTILE_VM = '<img src=x onerror=window.__xss=1>';

let server;
let origin;
let browser;
let dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bce-audit-page-'));
  server = await startServer();
  origin = `http://127.0.0.1:${server.address().port}`;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** @param {string} s */
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;');

/** @param {string} name @param {string[]} files */
function domain(name, files) {
  const disks = files
    .map((f, k) => `    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='${esc(`${HOST}/${f}`)}'/>\n      <target dev='vd${'abc'[k]}' bus='virtio'/>\n    </disk>\n`)
    .join('');
  return `<domain type='kvm'>\n  <name>${esc(name)}</name>\n  <devices>\n${disks}  </devices>\n</domain>\n`;
}

test('the audit page: drop a store and domains, picture, selection, script, hostile names', { skip }, async (t) => {
  const images = join(dir, 'images');
  mkdirSync(images);
  const q = (...a) => qemuImg(...a);
  q('create', '-q', '-f', 'qcow2', join(images, 'golden.qcow2'), '16M');
  for (const n of ['clone-a.qcow2', 'clone-b.qcow2', 'orphan.qcow2']) {
    q('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'golden.qcow2', join(images, n));
  }
  q('create', '-q', '-f', 'qcow2', join(images, 'gone.qcow2'), '16M');
  q('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'gone.qcow2', join(images, 'dangling.qcow2'));
  rmSync(join(images, 'gone.qcow2'));
  q('create', '-q', '-f', 'qcow2', join(images, HOSTILE), '16M');
  const x1 = join(dir, 'va.xml');
  const x2 = join(dir, 'others.xml');
  writeFileSync(x1, domain('va', ['clone-a.qcow2']));
  const bad = "<domain type='kvm'>\n  <name>bad</name>\n  <devices><disk>\n  </devices>\n</domain>\n";
  writeFileSync(x2, domain('vb', ['clone-b.qcow2']) + bad + domain(HOSTILE_VM, [HOSTILE]));

  const page = await browser.context.newPage();
  t.after(() => page.close());
  const errors = [];
  const requests = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`${origin}/audit.html`);
  await page.waitForFunction(() => !document.getElementById('boot'));
  await dropFiles(page, '#audit-drop', [images, x1, x2]);
  await page.waitForFunction(() => document.querySelectorAll('.audit-graph .node').length > 0);

  // Status: 6 images (golden, two clones, the orphan, the dangling overlay,
  // the hostile name; the deleted base is not one), 3 VMs, 1 domain error.
  const statusText = await page.locator('#audit-status').textContent();
  assert.match(statusText, /^6 images, 3 VMs:/);
  assert.match(statusText, /1 domain error/);
  const err = await page.locator('.audit-errors li').allTextContents();
  assert.equal(err.length, 1);
  assert.match(err[0], /^others\.xml: line 1[0-9]/);

  // The picture: a node per VM (3), disk (3), image (6) and the missing base.
  const kinds = await page.evaluate(() => ['vm', 'disk', 'image', 'external'].map((k) => document.querySelectorAll(`.audit-graph .node.${k}`).length));
  assert.deepEqual(kinds, [3, 3, 6, 1]);
  // The shared base is drawn once with an edge from each clone; the missing
  // base's link is red.
  assert.equal(await page.locator('.audit-graph .node.image[aria-label^="golden.qcow2"]').count(), 1);
  assert.ok((await page.locator('.audit-graph .edge.broken').count()) >= 1);
  await page.screenshot({ path: join(ARTIFACTS, 'audit-page.png'), fullPage: true });

  // Select the shared base with the keyboard: its users are shown.
  const golden = page.locator('.audit-graph .node.image[aria-label^="golden.qcow2"]');
  await golden.focus();
  await page.keyboard.press('Enter');
  const side = await page.locator('.audit-details').textContent();
  assert.match(side, /VM va, disk vda, depth 1/);
  assert.match(side, /VM vb, disk vda, depth 1/);
  assert.match(side, /Can I delete it\? breaks-others/);
  // Arrow keys move between nodes: ← from the base to a clone standing on
  // it, → back along its link to the base.
  await page.keyboard.press('ArrowLeft');
  const left = await page.evaluate(() => document.activeElement?.getAttribute('aria-label'));
  assert.match(left, /^(clone-a|clone-b|orphan)\.qcow2/);
  await page.keyboard.press('ArrowRight');
  assert.match(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), /^golden\.qcow2/);
  // A clone's commit names the hazard: the other clone and the orphan.
  await page.locator('.audit-graph .node.image[aria-label^="clone-a.qcow2"]').click();
  assert.match(await page.locator('.audit-details').textContent(), /Shared-base hazard: 2 other image\(s\)/);

  // Zoom with the keyboard changes the view box.
  const vb0 = await page.locator('.audit-graph').getAttribute('viewBox');
  await page.locator('.audit-graph').focus();
  await page.keyboard.press('+');
  assert.notEqual(await page.locator('.audit-graph').getAttribute('viewBox'), vb0);

  // The table view: one row per image.
  assert.equal(await page.locator('.audit-table tbody tr').count(), 6);
  // The drop was read as the element reads one (issue 18): in the probe
  // worker, each file's size coming back with its chunks; the table's file
  // sizes are the files' own.
  assert.ok(requests.some((u) => new URL(u).pathname === '/probe-worker.js'), 'the probe worker read the drop');
  const rows = await page.locator('.audit-table tbody tr').evaluateAll((trs) => trs.map((tr) => [tr.querySelector('th')?.textContent, tr.querySelectorAll('td')[2]?.textContent]));
  const onDisk = Object.fromEntries(readdirSync(images).map((n) => [n, humanSize(statSync(join(images, n)).size)]));
  for (const [name, size] of rows) assert.equal(size, onDisk[/** @type {string} */ (name)], `${name}'s file size`);

  // The fix script downloads.
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByText('Download the fix script').click()]);
  const script = readFileSync(await dl.path(), 'utf8');
  assert.ok(script.startsWith('#!/bin/sh\n') && script.includes('set -eu'), script);

  // The hostile name is text: no <img> was made, nothing ran.
  assert.equal(await page.evaluate(() => document.querySelectorAll('img').length), 0);
  assert.equal(await page.evaluate(() => /** @type {any} */ (window).__xss), undefined);
  assert.ok((await page.locator('.audit-table').textContent()).includes(HOSTILE));
  assert.equal(await page.locator(`.audit-graph .node.vm[aria-label="VM ${HOSTILE_VM}"]`).count(), 1);
  assert.ok((await page.locator('.audit-graph').textContent()).includes(HOSTILE_VM));

  // No request left the page's origin.
  assert.deepEqual(requests.filter((u) => !u.startsWith(origin)), []);
  assert.deepEqual(errors, []);
});
