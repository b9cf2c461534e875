// The page in Chromium (issue 13): how dropped folders name their images and
// the paths the XML gets from them, qcow2 external data files in the tree, and
// the `untrusted` attribute. Real qemu-img images, dropped with trusted CDP
// drag events or given to the page's file inputs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../support/server.mjs';
import { launch, dropFiles, ARTIFACTS } from '../support/browser.mjs';
import { haveQemuImg, makeChain, qemuImg, qemuInfo, forgetBackingFormat } from '../support/images.mjs';

const skip = haveQemuImg() ? false : 'qemu-img is not installed';
const HOST_DIR = '/var/lib/libvirt/images';
const DOMAIN = `<domain type='kvm'>
  <name>web1</name>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${HOST_DIR}/top.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
`;

let server;
let origin;
let browser;
let dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bce-drops-'));
  server = await startServer();
  origin = `http://127.0.0.1:${server.address().port}`;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh page; `diagnostics` events are kept in window.__diags, page errors in `errors`. */
async function openPage(t, { init } = {}) {
  const page = await browser.context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  t.after(() => page.close());
  await page.addInitScript(() => document.addEventListener('backing-chain-editor-diagnostics', (e) => (window.__diags = e.detail.diagnostics)));
  if (init) await page.addInitScript(init);
  await page.goto(`${origin}/`);
  await page.locator('backing-chain-editor').evaluate((e) => e.ready);
  return { page, errors };
}

function subdir(name) {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  return d;
}

const el = (page) => page.locator('backing-chain-editor');

/** Image items of the tree as "level:name", in tree order. */
function treeOf(page) {
  return el(page).evaluate((e) =>
    [...e.shadowRoot.querySelectorAll('li[role=treeitem][data-image]')].map((li) => `${li.getAttribute('aria-level')}:${li.querySelector(':scope > .row > .name').textContent}`),
  );
}

async function waitTree(page, n) {
  await page.waitForFunction((n) => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('li[role=treeitem][data-image]').length >= n, n);
}

const xmlOf = (page) => el(page).evaluate((e) => e.getXml());

function xpath(xml, expr) {
  return execFileSync('xmllint', ['--xpath', expr, '-'], { input: xml, encoding: 'utf8' }).trim();
}

/** The page's diagnostics list entries with `code`, as text. */
const diagTexts = (page, code) => el(page).locator(`.diags li[data-code=${code}]`).allInnerTexts();

/** imgs/ (top → base, backing format of top not recorded, and sub/a.qcow2) and a domain XML next to it. */
function folderCase(name) {
  const imgs = subdir(`${name}/imgs`);
  const top = join(imgs, 'top.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', join(imgs, 'base.qcow2'), '1G');
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'base.qcow2', top);
  forgetBackingFormat(top);
  mkdirSync(join(imgs, 'sub'));
  qemuImg('create', '-q', '-f', 'qcow2', join(imgs, 'sub', 'a.qcow2'), '1G');
  const xml = join(dir, name, 'web1.xml');
  writeFileSync(xml, DOMAIN);
  return { imgs, xml, top };
}

/** What a drop of imgs/ with the domain XML must give: names and paths relative to imgs/. */
async function checkFolder(page, { top }) {
  await waitTree(page, 3);
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').domainXml.includes('<name>web1'));
  // The names: paths inside the dropped folder (qemu-img wrote 'base.qcow2' as top's backing name).
  assert.equal(qemuInfo(top)['backing-filename'], 'base.qcow2');
  assert.deepEqual((await treeOf(page)).sort(), ['1:sub/a.qcow2', '1:top.qcow2', '2:base.qcow2']);
  // The XML: the disk's source is the host's top; its backing is base.qcow2 in the same host directory.
  const xml = await xmlOf(page);
  assert.equal(xpath(xml, 'string(//disk/source/@file)'), `${HOST_DIR}/top.qcow2`);
  assert.equal(xpath(xml, 'string(//disk/backingStore/source/@file)'), `${HOST_DIR}/base.qcow2`);
  assert.equal(xpath(xml, 'count(//disk/backingStore/backingStore/node())'), '0');
  assert.doesNotMatch(xml, /imgs/);
  // The fix command names the files as the folder has them.
  const fix = await el(page).locator('li[data-image]:has(> .row .name:text-is("top.qcow2")) > .diag[data-code=backing-format-not-recorded] code').innerText();
  assert.match(fix, /^qemu-img rebase -u .*-F qcow2 .*-b base\.qcow2 top\.qcow2$/);
  // The paths were guessed: said on the page and in the diagnostics event.
  const [warn] = await diagTexts(page, 'dropped-paths');
  assert.match(warn, /warning/);
  assert.match(warn, /relative to the dropped folder 'imgs' and were made absolute with the base directory '\/var\/lib\/libvirt\/images'.*set the base directory/);
  const fromEvent = (await page.evaluate(() => window.__diags)).filter((d) => d.code === 'dropped-paths');
  assert.equal(fromEvent.length, 1);
  assert.equal(fromEvent[0].severity, 'warning');
  assert.match(fromEvent[0].message, /'imgs'.*'\/var\/lib\/libvirt\/images'/);
  // Once the base directory is given, the paths are the user's: no warning.
  await el(page).evaluate((e) => (e.baseDir = '/srv/vm'));
  const xml2 = await xmlOf(page);
  assert.equal(xpath(xml2, 'string(//disk/backingStore/source/@file)'), '/srv/vm/base.qcow2');
  assert.deepEqual(await diagTexts(page, 'dropped-paths'), []);
  assert.ok(!(await page.evaluate(() => window.__diags)).some((d) => d.code === 'dropped-paths'));
}

test('a dropped folder (File System Access handles) names its images from inside it; the XML and the fix commands get host paths, and the guess is said', { skip }, async (t) => {
  const c = folderCase('handles');
  const { page, errors } = await openPage(t);
  assert.equal(await page.evaluate(() => 'getAsFileSystemHandle' in DataTransferItem.prototype), true);
  // A domain XML dropped along with the folder does not count as a second item.
  await dropFiles(page, 'backing-chain-editor', [c.imgs, c.xml]);
  await checkFolder(page, c);
  await page.screenshot({ path: join(ARTIFACTS, 'drops-folder.png'), fullPage: true });
  assert.deepEqual(errors, []);
});

test('the same through webkitGetAsEntry (browsers without handles)', { skip }, async (t) => {
  const c = folderCase('entries');
  const { page, errors } = await openPage(t, { init: () => delete DataTransferItem.prototype.getAsFileSystemHandle });
  assert.equal(await page.evaluate(() => 'getAsFileSystemHandle' in DataTransferItem.prototype), false);
  await dropFiles(page, 'backing-chain-editor', [c.xml, c.imgs]);
  await checkFolder(page, c);
  assert.deepEqual(errors, []);
});

test('"Choose a folder…" names the images as a drop of that folder does, and as choosing the files one by one', { skip }, async (t) => {
  const c = folderCase('picker');
  const { page, errors } = await openPage(t);
  // One by one first: the same host paths.
  await el(page).evaluate((e, x) => (e.domainXml = x), DOMAIN);
  await el(page).locator('input[type=file]:not([webkitdirectory])').setInputFiles([c.top, join(c.imgs, 'base.qcow2')]);
  await waitTree(page, 2);
  assert.equal(xpath(await xmlOf(page), 'string(//disk/backingStore/source/@file)'), `${HOST_DIR}/base.qcow2`);
  assert.match((await diagTexts(page, 'dropped-paths'))[0], /relative to the folder the files came from and were made absolute with the base directory '\/var\/lib\/libvirt\/images'/);
  await el(page).evaluate((e) => e.clear());
  await el(page).locator('input[webkitdirectory]').setInputFiles(c.imgs);
  await checkFolder(page, c);
  assert.deepEqual(errors, []);
});

test('several folders and a file dropped together keep their folder names (relative to where they were dragged from); without a domain the paths are written relative, and the page says so', { skip }, async (t) => {
  const root = subdir('several');
  for (const vm of ['vm1', 'vm2']) makeChain(subdir(`several/${vm}`), { mid: 'mid.qcow2', top: 'disk.qcow2' });
  qemuImg('create', '-q', '-f', 'qcow2', join(root, 'alone.qcow2'), '1G');
  const { page, errors } = await openPage(t);
  await dropFiles(page, 'backing-chain-editor', [join(root, 'vm1'), join(root, 'vm2'), join(root, 'alone.qcow2')]);
  await waitTree(page, 7);
  // Same-named files of the two folders stay apart, each chain inside its folder.
  assert.deepEqual((await treeOf(page)).sort(), ['1:alone.qcow2', '1:vm1/disk.qcow2', '1:vm2/disk.qcow2', '2:vm1/mid.qcow2', '2:vm2/mid.qcow2', '3:vm1/base.qcow2', '3:vm2/base.qcow2']);
  const xml = `<disks>${await xmlOf(page)}</disks>`;
  assert.equal(xpath(xml, "string(//disk[source/@file='vm2/disk.qcow2']/backingStore/backingStore/source/@file)"), 'vm2/base.qcow2');
  const warns = await diagTexts(page, 'dropped-paths');
  assert.equal(warns.length, 2, warns.join('\n'));
  assert.ok(warns.some((w) => /relative to the folder the items were dropped from and were written relative/.test(w)), warns.join('\n'));
  assert.ok(warns.some((w) => /relative to the folder the files came from and were written relative/.test(w)), warns.join('\n'));
  // A base directory makes them absolute, and the warnings go.
  await el(page).evaluate((e, d) => (e.baseDir = d), HOST_DIR);
  const xml2 = `<disks>${await xmlOf(page)}</disks>`;
  assert.equal(xpath(xml2, "string(//disk[source/@file='/var/lib/libvirt/images/vm1/disk.qcow2']/backingStore/source/@file)"), `${HOST_DIR}/vm1/mid.qcow2`);
  assert.deepEqual(await diagTexts(page, 'dropped-paths'), []);
  assert.deepEqual(errors, []);
});

test('a qcow2 external data file is shown on its image, dropped or not, and never as a chain of its own; its name is text', { skip }, async (t) => {
  const d = subdir('datafile');
  // qemu-img makes a relative data file in its working directory: run it in d.
  const create = (image, data) => execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${data}`, image, '64M'], { cwd: d });
  create('web1.qcow2', 'web1.data');
  const html = '<img src=x onerror=window.__xss=1>.data';
  create('odd.qcow2', html);
  // The oracle: qemu-img's names for the data files, and the data file's format.
  assert.equal(qemuInfo(join(d, 'web1.qcow2'))['format-specific'].data['data-file'], 'web1.data');
  assert.equal(qemuInfo(join(d, 'odd.qcow2'))['format-specific'].data['data-file'], html);
  assert.equal(qemuInfo(join(d, 'web1.data')).format, 'raw');
  const { page, errors } = await openPage(t);
  const dataLine = (name) => el(page).locator(`li[data-image]:has(> .row .name:text-is("${name}")) > .datafile`).innerText();
  // The image alone: its data file is named, not found.
  await dropFiles(page, 'backing-chain-editor', [join(d, 'web1.qcow2')]);
  await waitTree(page, 1);
  assert.equal(await dataLine('web1.qcow2'), 'data file: web1.data (not among the dropped files)');
  // The data file dropped too: on its image, with its format; no item and no chain of its own.
  await dropFiles(page, 'backing-chain-editor', [join(d, 'web1.data'), join(d, 'odd.qcow2')]);
  await waitTree(page, 2);
  assert.equal(await dataLine('web1.qcow2'), 'data file: web1.data (raw)');
  assert.deepEqual((await treeOf(page)).sort(), ['1:odd.qcow2', '1:web1.qcow2']);
  assert.equal(await el(page).locator('li[role=treeitem] .name:text-is("web1.data")').count(), 0);
  assert.equal(await el(page).locator('li[role=treeitem][data-image] > .row .badge:text-is("1 layer")').count(), 2);
  // Nor a disk of its own in the XML, nor diagnostics about it as an image.
  const xml = `<disks>${await xmlOf(page)}</disks>`;
  assert.equal(xpath(xml, 'count(//disk)'), '2');
  assert.equal(xpath(xml, "count(//disk/source[@file='web1.data'])"), '0');
  // It is in the XML as libvirt's <dataStore> of its image.
  assert.equal(xpath(xml, "count(//disk/source/dataStore/source[@file='web1.data'])"), '1');
  assert.ok(!(await page.evaluate(() => window.__diags)).some((x) => /'web1\.data' is not|no header/.test(x.message)));
  // Each image's data-file note once: the chain's copy of a probe note is not shown again.
  assert.equal((await page.evaluate(() => window.__diags)).filter((x) => x.code === 'external-data-file').length, 2);
  assert.equal(await el(page).locator('li[data-image] .diag:has-text("external data file")').count(), 2);
  // The details of the image say it too.
  await el(page).locator('li[data-image] > .row .name:text-is("web1.qcow2")').click();
  // The details come from their own module (imported on the first selection): wait for this image's.
  await el(page).locator('.details h3', { hasText: 'web1.qcow2' }).waitFor();
  assert.match(await el(page).locator('.details').innerText(), /Data file\s+web1\.data \(raw\)/);
  // A name that looks like HTML stays text.
  assert.equal(await dataLine('odd.qcow2'), `data file: ${html} (not among the dropped files)`);
  assert.equal(await el(page).evaluate((e) => e.shadowRoot.querySelectorAll('img').length), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  await page.screenshot({ path: join(ARTIFACTS, 'drops-data-file.png'), fullPage: true });
  // Without the image that names it, the data file is an ordinary raw file of the set again; undo puts it back.
  await el(page).evaluate((e) => e.removeImage('web1.qcow2'));
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').getXml().includes("'web1.data'"));
  assert.deepEqual((await treeOf(page)).sort(), ['1:odd.qcow2', '1:web1.data']);
  await el(page).evaluate((e) => e.undo());
  await waitTree(page, 2);
  // Back on its image: no disk of its own (it is in web1.qcow2's <dataStore>).
  await page.waitForFunction(() => {
    const xml = document.querySelector('backing-chain-editor').getXml();
    const doc = new DOMParser().parseFromString(`<r>${xml}</r>`, 'application/xml');
    return doc.querySelectorAll('disk > source[file="web1.data"]').length === 0;
  });
  assert.deepEqual((await treeOf(page)).sort(), ['1:odd.qcow2', '1:web1.qcow2']);
  assert.equal(await dataLine('web1.qcow2'), 'data file: web1.data (raw)');
  assert.deepEqual(errors, []);
});

test('untrusted: the page flags backing names that reach outside; missingBackings() never lists them; the attribute reaches the core', { skip }, async (t) => {
  const d = subdir('untrusted/images');
  mkdirSync(join(dir, 'untrusted/outside'));
  qemuImg('create', '-q', '-f', 'qcow2', join(dir, 'untrusted/outside/secret.qcow2'), '1G');
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', '../outside/secret.qcow2', join(d, 'evil.qcow2'));
  qemuImg('create', '-q', '-f', 'qcow2', join(d, 'base.qcow2'), '1G');
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'base.qcow2', join(d, 'fine.qcow2'));
  assert.equal(qemuInfo(join(d, 'evil.qcow2'))['backing-filename'], '../outside/secret.qcow2');
  const { page, errors } = await openPage(t);
  // The page is untrusted (index.html): a dropped image is flagged.
  assert.equal(await el(page).evaluate((e) => e.untrusted), true);
  await dropFiles(page, 'backing-chain-editor', [join(d, 'evil.qcow2')]);
  await waitTree(page, 1);
  const [flag] = await diagTexts(page, 'untrusted-backing-name');
  assert.match(flag, /evil\.qcow2.*\.\.\/outside\/secret\.qcow2/);
  // As a host adds them (absolute names, its own reader), the images name
  // two missing backing files; only the one inside the image folder may be read.
  const b64 = (p) => readFileSync(p).toString('base64');
  const missing = await el(page).evaluate(async (e, files) => {
    e.clear();
    for (const [name, data] of files) {
      const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      await e.addImage(name, async (off, len) => bytes.slice(off, off + len), { size: bytes.length });
    }
    const flagged = e.missingBackings();
    e.untrusted = false;
    const codes = e.forest.chains.flatMap((c) => c.diagnostics.map((d) => d.code));
    return { flagged, all: e.missingBackings(), codes };
  }, [['/srv/vm/images/evil.qcow2', b64(join(d, 'evil.qcow2'))], ['/srv/vm/images/fine.qcow2', b64(join(d, 'fine.qcow2'))]]);
  assert.deepEqual(missing.flagged, ['/srv/vm/images/base.qcow2']);
  // Without the attribute the core flags nothing and the escaping name is listed (the filter is not vacuous).
  assert.ok(!missing.codes.includes('untrusted-backing-name'));
  assert.deepEqual(missing.all.slice().sort(), ['/srv/vm/images/../outside/secret.qcow2', '/srv/vm/images/base.qcow2'].sort());
  assert.deepEqual(await diagTexts(page, 'untrusted-backing-name'), []);
  assert.deepEqual(errors, []);
});
