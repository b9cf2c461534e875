// The page as an admin uses it at real sizes (issue 15), in Chromium: problems
// first (summary, errors sorted first, a fix for every error), finding things
// (filter, expand/collapse, a shared base once), one state in two views, the
// output, accessibility (axe-core in five states). Real qemu-img images
// dropped with trusted CDP drag events; fix commands are run by a real shell
// and checked with qemu-img.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../support/server.mjs';
import { launch, dropFiles, openElementPage } from '../support/browser.mjs';
import { haveQemuImg, makeChain, qemuImg, qemuInfo } from '../support/images.mjs';

const skip = haveQemuImg() ? false : 'qemu-img is not installed';
const EL = 'backing-chain-editor';

let server;
let origin;
let browser;
let dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bce-admin-'));
  server = await startServer();
  origin = `http://127.0.0.1:${server.address().port}`;
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const openPage = (t, o) => openElementPage(browser, origin + '/', t, o);

function subdir(name) {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  return d;
}

/**
 * Wait for `n` images in the element's forest and every chain's top in the
 * tree (past 40 chains they are collapsed, and what is under a closed item
 * is built when it first opens).
 */
async function waitTree(page, n) {
  await page.waitForFunction((n) => {
    const el = document.querySelector('backing-chain-editor');
    const f = el.forest;
    return !!f && f.images.length >= n && el.shadowRoot.querySelectorAll('ul[role=tree] > li[role=treeitem][aria-level="1"]').length === f.chains.length;
  }, n);
}

/** The tops of the tree in order, as shown (image items of level 1, not hidden). */
function tops(page) {
  return page.locator(EL).evaluate((el) => [...el.shadowRoot.querySelectorAll('ul[role=tree] > li[role=treeitem][aria-level="1"]')].map((li) => li.querySelector(':scope > .row .name').textContent));
}

test('problems first: the summary counts and links, chains with errors sorted first, a compact drop bar, and a missing backing gets a rebase command that a shell runs for any name', { skip }, async (t) => {
  const d = subdir('problems');
  // Two good chains given first, then the broken one; names a shell would trip on.
  makeChain(d, { base: 'b1.qcow2', mid: 'm1.qcow2', top: 't1.qcow2' });
  qemuImg('create', '-q', '-f', 'qcow2', join(d, 'solo.qcow2'), '1G');
  const orphan = `it's a "vm" $(x).qcow2`;
  const base = "b a'se.qcow2";
  qemuImg('create', '-q', '-f', 'qcow2', join(d, base), '3G');
  qemuImg('create', '-q', '-f', 'qcow2', '-u', '-F', 'qcow2', '-b', 'gone.qcow2', join(d, orphan), '3G');
  const { page, events } = await openPage(t);
  const drop = page.locator(`${EL} section.drop`);
  const tall = (await drop.boundingBox()).height;
  assert.equal(await page.locator(`${EL} section.summary`).isVisible(), false, 'no summary before anything is loaded');
  await dropFiles(page, EL, ['t1.qcow2', 'm1.qcow2', 'b1.qcow2', 'solo.qcow2', base, orphan].map((n) => join(d, n)));
  await waitTree(page, 6);
  // The drop zone is a compact bar now.
  assert.ok(await drop.evaluate((e) => e.classList.contains('compact')));
  assert.ok((await drop.boundingBox()).height < tall, 'the drop zone shrinks');
  // The chain with the error first, then the others in the order given.
  assert.deepEqual(await tops(page), [orphan, 't1.qcow2', 'solo.qcow2', base]);
  // The summary: counts (each a filter), the first messages.
  const summary = page.locator(`${EL} section.summary`);
  assert.ok(await summary.isVisible());
  const counts = await summary.locator('.counts').innerText();
  const diags = await page.locator(EL).evaluate((el) => {
    const ds = [...el.shadowRoot.querySelectorAll('.diags li[data-code]')].map((li) => li.querySelector('.sev').textContent);
    return { error: ds.filter((x) => /error/.test(x)).length, warning: ds.filter((x) => /warning/.test(x)).length };
  });
  assert.ok(diags.error >= 1);
  assert.match(counts, new RegExp(`${diags.error} errors?`));
  assert.match(counts, new RegExp(`${diags.warning} warnings?`));
  const first = await summary.locator('.first li').first().innerText();
  assert.match(first, /missing/);
  assert.ok(first.includes(orphan));
  // The errors link filters the tree to the chains with errors.
  await summary.locator('button[data-filter=error]').click();
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('ul[role=tree] > li[aria-level="1"]').length === 1);
  assert.deepEqual(await tops(page), [orphan]);
  assert.equal(await page.locator(`${EL} .filter input`).inputValue(), 'error');
  // The missing backing: copy it here, or rebase onto the base of the same size, with the command.
  const diag = page.locator(`${EL} li[data-image] > .diag[data-code=missing-backing]`);
  const how = await diag.locator('.how').innerText();
  assert.match(how, /Copy 'gone\.qcow2' here/);
  assert.ok(how.includes(`rebase onto '${base}'`), how);
  const command = await diag.locator('.fix code').innerText();
  // A real shell runs it in the images' directory; qemu-img then sees the new backing.
  execFileSync('sh', ['-c', command], { cwd: d });
  const info = qemuInfo(join(d, orphan));
  assert.equal(info['backing-filename'], base);
  assert.equal(info['backing-filename-format'], 'qcow2');
  // Its code is shown small, next to the message.
  assert.equal(await diag.locator('.code').innerText(), 'missing-backing');
  // Every error in the tree has a fix command or says what to do.
  const bare = await page.locator(EL).evaluate((el) => [...el.shadowRoot.querySelectorAll('li[data-image] > .diag.error')].filter((x) => !x.querySelector('.fix, .how')).length);
  assert.equal(bare, 0);
  assert.deepEqual(events.errors, []);
});

test('every error without a command says why: a backing loop', { skip }, async (t) => {
  const d = subdir('loop');
  qemuImg('create', '-q', '-f', 'qcow2', join(d, 'b.qcow2'), '1M');
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'b.qcow2', join(d, 'a.qcow2'));
  qemuImg('rebase', '-u', '-F', 'qcow2', '-b', 'a.qcow2', join(d, 'b.qcow2'));
  const { page } = await openPage(t);
  await dropFiles(page, EL, [join(d, 'a.qcow2'), join(d, 'b.qcow2')]);
  await waitTree(page, 2);
  const loop = page.locator(`${EL} li[data-image] > .diag.error[data-code=backing-loop]`).first();
  assert.match(await loop.locator('.how').innerText(), /No single command: the loop is broken by rebasing/);
});

/** `n` chains of base ← top, all over one shared base (made with qemu-img). */
function manyChains(d, n, shared = 'shared-base.qcow2') {
  qemuImg('create', '-q', '-f', 'qcow2', join(d, shared), '1G');
  const names = [];
  for (let i = 0; i < n; i++) {
    const name = `vm${String(i).padStart(2, '0')}.qcow2`;
    qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', shared, join(d, name));
    names.push(name);
  }
  return [shared, ...names];
}

test('find: the filter (name, format, status words, "/" focuses it), collapsed by default past a size, expand/collapse all, a shared base once with its overlays on demand', { skip }, async (t) => {
  const d = subdir('find');
  const names = manyChains(d, 60);
  qemuImg('create', '-q', '-f', 'raw', join(d, 'plain.img'), '1M');
  qemuImg('create', '-q', '-f', 'qcow2', '-u', '-F', 'qcow2', '-b', 'gone.qcow2', join(d, 'orphan.qcow2'), '1G');
  const { page, events } = await openPage(t);
  await dropFiles(page, EL, [...names, 'plain.img', 'orphan.qcow2'].map((n) => join(d, n)));
  await waitTree(page, 63);
  const el = page.locator(EL);
  const state = () =>
    el.evaluate((el) => {
      const r = el.shadowRoot;
      const tops = [...r.querySelectorAll('ul[role=tree] > li[role=treeitem][aria-level="1"]')];
      return {
        tops: tops.map((li) => li.querySelector(':scope > .row .name').textContent),
        open: tops.filter((li) => li.getAttribute('aria-expanded') === 'true').length,
        images: [...r.querySelectorAll('li[role=treeitem][data-image]')].map((li) => li.querySelector(':scope > .row .name').textContent),
        refs: r.querySelectorAll('li[role=treeitem][data-ref]').length,
        overlayLinks: r.querySelectorAll('.overlays button').length,
        count: r.querySelector('.filter [aria-live]').textContent,
      };
    });
  let s = await state();
  // 62 chains: past the size, collapsed by default; the broken one first.
  assert.equal(s.tops.length, 62);
  assert.equal(s.tops[0], 'orphan.qcow2');
  assert.equal(s.open, 0);
  // The one tab stop of the tree is on an item that shows.
  assert.deepEqual(await el.evaluate((el) => [...el.shadowRoot.querySelectorAll('li[role=treeitem][tabindex="0"]')].map((li) => li.hidden)), [false]);
  // Collapsed, a chain is one item: what is under it is built when it opens.
  assert.equal(s.images.length, 62);
  assert.equal(s.refs, 0);
  assert.equal(s.overlayLinks, 0);
  await el.locator('button[data-act=expand-all]').click();
  s = await state();
  // The shared base is an image item once; the other 59 chains lead to it.
  assert.equal(s.images.filter((n) => n === 'shared-base.qcow2').length, 1);
  assert.equal(s.refs, 59);
  // Its overlays on demand: 60 links, once.
  assert.equal(s.overlayLinks, 0);
  assert.equal(s.open, s.tops.filter((n) => n !== 'plain.img' && n !== 'orphan.qcow2').length);
  await el.locator('li[data-image] > .row button.shared').click();
  s = await state();
  assert.equal(s.overlayLinks, 60);
  await el.locator('button[data-act=collapse-all]').click();
  assert.equal((await state()).open, 0);
  // "/" focuses the filter from anywhere in the element…
  await el.locator('li[role=treeitem]').first().focus();
  await page.keyboard.press('/');
  assert.equal(await el.evaluate((el) => el.shadowRoot.activeElement?.getAttribute('type')), 'search');
  // …and from anywhere on the page (the page binds it to focusFilter()).
  await page.evaluate(() => /** @type {HTMLElement} */ (document.activeElement)?.blur());
  await page.locator('body').click({ position: { x: 2, y: 2 } });
  assert.equal(await page.evaluate(() => document.activeElement === document.body), true);
  await page.keyboard.press('/');
  assert.equal(await el.evaluate((el) => el.shadowRoot.activeElement?.getAttribute('type')), 'search');
  // Typed into a text field outside the tree, "/" is just a character.
  const domainText = el.locator('textarea').first();
  await domainText.focus();
  const before = await domainText.inputValue();
  await page.keyboard.press('/');
  assert.equal(await domainText.inputValue(), before + '/');
  await domainText.fill(before);
  await el.locator('input[type=search]').focus();
  // By name (a part of it), by format, by status words.
  const filter = async (q, expect) => {
    await page.keyboard.press('Control+a');
    await page.keyboard.type(q);
    await page.waitForFunction(
      (expect) => JSON.stringify([...document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('ul[role=tree] > li[role=treeitem][aria-level="1"]')].map((li) => li.querySelector(':scope > .row .name').textContent)) === JSON.stringify(expect),
      expect,
    );
    s = await state();
    assert.deepEqual(s.tops, expect, q);
  };
  await filter('vm07', ['vm07.qcow2']);
  // A match opens its chain, and the shared base shows under it (the first chain shown).
  assert.equal(s.open, 1);
  assert.deepEqual(s.images, ['vm07.qcow2', 'shared-base.qcow2']);
  await filter('raw', ['plain.img']);
  await filter('orphan', ['orphan.qcow2']);
  await filter('error', ['orphan.qcow2']);
  await filter('shared vm1', Array.from({ length: 10 }, (_, i) => `vm1${i}.qcow2`));
  assert.match(s.count, /^10 of 62 chains match$/);
  await filter('nothing-like-this', []);
  assert.ok(await el.locator('text=No chain matches the filter.').isVisible());
  // Escape clears it.
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('ul[role=tree] > li[role=treeitem][aria-level="1"]').length === 62);
  assert.deepEqual(events.errors, []);
});

test('the Backing image combobox (ARIA combobox: type to narrow, arrows, Enter) among 60 images, and one menu button per layer row (arrows inside, Escape returns)', { skip }, async (t) => {
  const d = subdir('combo');
  const names = manyChains(d, 60);
  const { page, events } = await openPage(t);
  await dropFiles(page, EL, names.map((n) => join(d, n)));
  await waitTree(page, 61);
  const el = page.locator(EL);
  await el.locator('input[type=search]').fill('vm42');
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('ul[role=tree] > li[role=treeitem][aria-level="1"]').length === 1);
  await el.locator('li[data-image] > .row >> text=vm42.qcow2').click();
  const box = el.locator('.details input[role=combobox]');
  assert.equal(await box.getAttribute('aria-expanded'), 'false');
  assert.equal(await box.inputValue(), 'as its header says');
  // Label, list and active option are tied together as the pattern says.
  assert.equal(await el.locator('.details label >> text=Backing image').getAttribute('for'), await box.getAttribute('id'));
  await box.fill('vm0');
  assert.equal(await box.getAttribute('aria-expanded'), 'true');
  const listId = await box.getAttribute('aria-controls');
  const options = await el.locator(`[id="${listId}"] [role=option]`).allTextContents();
  assert.deepEqual(options, Array.from({ length: 10 }, (_, i) => `vm0${i}.qcow2`));
  await box.press('ArrowDown');
  await box.press('ArrowDown');
  const active = await box.getAttribute('aria-activedescendant');
  assert.equal(await el.locator(`[id="${active}"]`).textContent(), 'vm01.qcow2');
  assert.equal(await el.locator(`[id="${active}"]`).getAttribute('aria-selected'), 'true');
  await box.press('Enter');
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').getXml().includes("<source file='vm01.qcow2'"));
  assert.ok((await el.evaluate((el) => el.getXml())).match(/<source file='vm42\.qcow2'[^]*?<backingStore type='file'[^>]*>\s*<format type='qcow2'\/>\s*<source file='vm01\.qcow2'/));
  // The chains table: one tab stop per row, the actions in a menu.
  const row = el.locator('.chains .disk').first().locator('tr[data-depth="1"]');
  assert.equal(await row.locator('button').count(), 1);
  const menuButton = row.locator('button[data-act=menu]');
  assert.equal(await menuButton.getAttribute('aria-haspopup'), 'menu');
  await menuButton.focus();
  await page.keyboard.press('ArrowDown');
  assert.equal(await menuButton.getAttribute('aria-expanded'), 'true');
  const focusedItem = () => el.evaluate((el) => el.shadowRoot.activeElement?.dataset.act);
  assert.equal(await focusedItem(), 'edit');
  await page.keyboard.press('ArrowDown');
  assert.equal(await focusedItem(), 'insert');
  await page.keyboard.press('End');
  assert.equal(await focusedItem(), 'remove');
  await page.keyboard.press('ArrowDown');
  assert.equal(await focusedItem(), 'edit', 'wraps around');
  await page.keyboard.press('Escape');
  assert.equal(await menuButton.getAttribute('aria-expanded'), 'false');
  assert.equal(await focusedItem(), 'menu');
  assert.deepEqual(events.errors, []);
});

const domainOf = (disks) => `<domain type='kvm'>
  <name>web1</name>
  <memory unit='KiB'>524288</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
${disks}  </devices>
</domain>
`;
const diskOf = (file, dev, chain = '') => `    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/${file}'/>
${chain}      <target dev='${dev}' bus='virtio'/>
    </disk>
`;

test('one state, two views: target dev on the tops, a tree reparent shows in the table, a table edit is marked in the tree at once, validate says "not given", one form across a mode switch, focus back to the opener, undo undoes edits only and shows what', { skip }, async (t) => {
  const d = subdir('two-views');
  makeChain(d);
  qemuImg('create', '-q', '-f', 'qcow2', join(d, 'other-base.qcow2'), '1G');
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'other-base.qcow2', join(d, 'data.qcow2'));
  const { page, events } = await openPage(t);
  const el = page.locator(EL);
  await dropFiles(page, EL, ['top.qcow2', 'mid.qcow2', 'base.qcow2', 'data.qcow2', 'other-base.qcow2'].map((n) => join(d, n)));
  await waitTree(page, 5);
  await el.evaluate((e, x) => (e.domainXml = x), domainOf(diskOf('top.qcow2', 'vda') + diskOf('data.qcow2', 'vdb')));
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('.badge.disk'));
  const diskBadge = (name) => el.locator(`li[data-image]:has(> .row .name:text-is("${name}")) > .row .badge.disk`).innerText();
  assert.equal(await diskBadge('top.qcow2'), 'vda');
  assert.equal(await diskBadge('data.qcow2'), 'vdb');
  // The tree's reparent shows in the table (the chain of vdb comes from the images).
  const place = (disk, depth) => el.locator(`.chains .disk[data-name="${disk}"] tr[data-depth="${depth}"] td[data-field=place]`).innerText();
  assert.equal(await place('vdb', 1), '/var/lib/libvirt/images/other-base.qcow2');
  await el.locator('li[data-image] > .row >> text=data.qcow2').click();
  const box = el.locator('.details input[role=combobox]');
  await box.fill('mid.qcow2');
  await box.press('ArrowDown');
  await box.press('Enter');
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('.chains .disk[data-name="vdb"] tr[data-depth="1"] td[data-field=place]').textContent.endsWith('/mid.qcow2'));
  assert.equal(await place('vdb', 2), '/var/lib/libvirt/images/base.qcow2');
  // A table edit that disagrees with the images is marked at once, on the row and in the tree.
  await el.locator('.chains .disk[data-name="vda"] tr[data-depth="2"] button[data-act=menu]').click();
  await el.locator('.chains .disk[data-name="vda"] tr[data-depth="2"] [role=menuitem][data-act=edit]').click();
  await el.locator('form.edit [name=path]').fill('/var/lib/libvirt/images/elsewhere.qcow2');
  await el.locator('form.edit button[type=submit]').click();
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('.chains .disk[data-name="vda"] tr.row-differs'));
  // Focus went back to the row's menu button.
  assert.deepEqual(await el.evaluate((e) => {
    const a = e.shadowRoot.activeElement;
    return [a?.dataset.act, a?.closest('tr')?.dataset.depth, a?.closest('.disk')?.dataset.name];
  }), ['menu', '2', 'vda']);
  assert.match(await el.locator('.chains .disk[data-name="vda"] tr[data-depth="2"] td.images').innerText(), /\/var\/lib\/libvirt\/images\/base\.qcow2/);
  assert.equal(await el.locator('li[data-image]:has(> .row .name:text-is("top.qcow2")) > .row .xml-differs').count(), 1);
  // Undo undoes edits, not view switches, and shows what it undid.
  await el.locator('label >> text=Flat (proposal)').click();
  await el.locator('label >> text=Validate').click();
  await el.locator('.chains button >> text=Undo').click();
  await page.waitForFunction(() => !document.querySelector('backing-chain-editor').getXml().includes('elsewhere'));
  assert.equal(await el.evaluate((e) => e.layout), 'flat');
  assert.equal(await el.evaluate((e) => e.mode), 'validate');
  assert.equal(await el.locator('.undone').innerText(), 'Undone: editing layer 2 of vda.');
  assert.ok(await el.locator('.chains .disk[data-name="vda"]').evaluate((x) => x.classList.contains('changed')));
  await el.locator('.chains button >> text=Redo').click();
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').getXml().includes('elsewhere'));
  assert.equal(await el.locator('.undone').innerText(), 'Redone: editing layer 2 of vda.');
  await el.evaluate((e) => (e.layout = 'nested'));
  // Validate: vdb has no chain in the XML: "not given", not a red mismatch.
  const vdb = el.locator('.chains .disk[data-name="vdb"]');
  assert.match(await vdb.locator('h3').innerText(), /not given/);
  assert.equal(await vdb.locator('tr.row-differs, td.differs').count(), 0);
  assert.match(await vdb.locator('tr[data-depth="1"] td.images').innerText(), /^not given in the XML; the images: file \/var\/lib\/libvirt\/images\/mid\.qcow2/);
  // One form, whatever the mode: open "Add a layer at the end" of vda, switch modes.
  await el.locator('.chains .disk[data-name="vda"] button[data-act=append]').click();
  for (const mode of ['Populate', 'Validate', 'Populate']) {
    await el.locator(`label >> text=${mode}`).click();
    await page.waitForFunction((m) => document.querySelector('backing-chain-editor').mode === m.toLowerCase(), mode);
    assert.equal(await el.locator('form.edit').count(), 1, mode);
    const dupes = await el.evaluate((e) => {
      const ids = [...e.shadowRoot.querySelectorAll('[id]')].map((x) => x.id);
      return ids.filter((id, i) => ids.indexOf(id) !== i);
    });
    assert.deepEqual(dupes, [], mode);
  }
  // Cancel: the focus goes back to the button that opened the form.
  await el.locator('form.edit button >> text=Cancel').click();
  assert.equal(await el.evaluate((e) => e.shadowRoot.activeElement?.dataset.act), 'append');
  assert.deepEqual(events.errors, []);
});

test('output: without a domain XML the base directory is asked for next to the drop zone and relative paths are said; downloads are named after the VM and layout', { skip }, async (t) => {
  const d = subdir('output');
  makeChain(d);
  const { page, events } = await openPage(t);
  const el = page.locator(EL);
  const base = el.locator('.drop .field.base');
  assert.ok(await base.isVisible(), 'asked for up front');
  await dropFiles(page, EL, ['top.qcow2', 'mid.qcow2', 'base.qcow2'].map((n) => join(d, n)));
  await waitTree(page, 3);
  assert.match(await base.locator('.meta').innerText(), /relative .* libvirt needs absolute paths/);
  const download = async () => {
    const [dl] = await Promise.all([page.waitForEvent('download'), el.locator('.output button >> text=Download').click()]);
    const path = await dl.path();
    return { name: dl.suggestedFilename(), text: (await import('node:fs')).readFileSync(path, 'utf8') };
  };
  let dl = await download();
  assert.equal(dl.name, 'disks.xml');
  assert.match(dl.text, /<source file='top\.qcow2'/);
  // The base directory given next to the drop zone: absolute paths, said so.
  await base.locator('input').fill('/srv/vm images');
  await base.locator('input').press('Enter');
  await base.locator('input').blur();
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').getXml().includes('/srv/vm images/top.qcow2'));
  assert.match(await base.locator('.meta').innerText(), /^Paths in the XML: \/srv\/vm images\/<name>\.$/);
  assert.equal(await el.locator('.domain input[type=text]').inputValue(), '/srv/vm images');
  // With a domain XML: named after the VM, and the layout.
  await el.evaluate((e) => (e.domainXml = "<domain type='kvm'><name>web1</name><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/srv/vm images/top.qcow2'/><target dev='vda' bus='virtio'/></disk></devices></domain>"));
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').getXml().includes('web1'));
  assert.equal(await base.isVisible(), false, 'the domain XML says where the images are');
  dl = await download();
  assert.equal(dl.name, 'web1.xml');
  assert.equal(dl.text, await el.evaluate((e) => e.getXml()));
  await el.locator('label >> text=Flat (proposal)').click();
  dl = await download();
  assert.equal(dl.name, 'web1.flat.xml');
  assert.match(dl.text, /<alias /);
  // A hostile VM name makes a plain file name.
  await el.evaluate((e) => (e.domainXml = e.domainXml.replace('<name>web1</name>', '<name>../../etc/x y</name>')));
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').getXml().includes('etc/x y'));
  dl = await download();
  assert.equal(dl.name, 'etc_x_y.flat.xml');
  assert.deepEqual(events.errors, []);
});

test('accessible: axe-core finds no serious or critical violation inside the element in the loaded, validate, edit-form, narrow (390 px) and dark states', { skip }, async (t) => {
  const { readFileSync } = await import('node:fs');
  const { createRequire } = await import('node:module');
  const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  const d = subdir('axe');
  makeChain(d);
  qemuImg('create', '-q', '-f', 'qcow2', '-u', '-F', 'qcow2', '-b', 'gone.qcow2', join(d, 'orphan.qcow2'), '1G');
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'base.qcow2', join(d, 'other.qcow2'));
  const { page, events } = await openPage(t);
  const el = page.locator(EL);
  await dropFiles(page, EL, ['top.qcow2', 'mid.qcow2', 'base.qcow2', 'orphan.qcow2', 'other.qcow2'].map((n) => join(d, n)));
  await waitTree(page, 5);
  const given = `      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/var/lib/libvirt/images/mid.qcow2'/>
        <backingStore type='file'>
          <format type='raw'/>
          <source file='/var/lib/libvirt/images/old-base.img'/>
        </backingStore>
      </backingStore>
`;
  await el.evaluate((e, x) => (e.domainXml = x), domainOf(diskOf('top.qcow2', 'vda', given) + diskOf('orphan.qcow2', 'vdb')));
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').getXml().includes('web1'));
  // axe-core, evaluated in the page (its CSP allows no inline script tag), run over the element: it walks the open shadow root.
  await page.evaluate(axeSource);
  const check = async (state) => {
    const found = await page.evaluate(async () => {
      const r = await globalThis.axe.run(document.querySelector('backing-chain-editor'), { resultTypes: ['violations'] });
      return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}) ×${v.nodes.length}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
    });
    assert.deepEqual(found, [], state);
    // It really looked inside: the shadow DOM's tree items were checked.
    const seen = await page.evaluate(async () => (await globalThis.axe.run(document.querySelector('backing-chain-editor'), { runOnly: ['aria-allowed-attr'] })).passes.flatMap((p) => p.nodes).length);
    assert.ok(seen > 10, `${state}: axe saw ${seen} nodes`);
  };
  await el.locator('li[data-image] > .row >> text=mid.qcow2').click();
  await check('loaded');
  // Each item's accessible name (as axe computes it) carries its status, message, sharing, the end of the chain.
  const names = await page.evaluate(() => {
    const host = document.querySelector('backing-chain-editor');
    globalThis.axe.setup(host);
    try {
      return Object.fromEntries([...host.shadowRoot.querySelectorAll('li[role=treeitem]')].map((li) => [li.querySelector('.name').textContent + (li.dataset.ref ? ' (ref)' : ''), globalThis.axe.commons.text.accessibleText(li)]));
    } finally {
      globalThis.axe.teardown();
    }
  });
  assert.match(names['orphan.qcow2'], /^disk vdb orphan\.qcow2 qcow2 1 GiB chain missing 1 error .*error the backing file 'gone\.qcow2' of 'orphan\.qcow2' .* is missing/);
  assert.match(names['base.qcow2'], /^base\.qcow2 qcow2 1 GiB shared by 2 overlays .*end of chain/);
  assert.match(names['base.qcow2 (ref)'], /^base\.qcow2 shared base, shown once, under (top|other)\.qcow2, shared by 2 overlays$/);
  assert.equal(await el.locator('li[role=treeitem].end, li[role=treeitem] li').count(), 0, 'the end of a chain is not an item of its own');
  await el.locator('.chains .disk[data-name="vda"] tr[data-depth="2"] button[data-act=menu]').click();
  await check('menu open');
  await el.locator('.chains .disk[data-name="vda"] tr[data-depth="2"] [role=menuitem][data-act=edit]').click();
  await check('edit form');
  await el.locator('label >> text=Validate').click();
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').mode === 'validate');
  assert.equal(await el.locator('form.edit').count(), 1);
  await check('validate, edit form');
  await el.locator('.details input[role=combobox]').fill('o');
  await check('validate, combobox open');
  await page.setViewportSize({ width: 390, height: 844 });
  await check('narrow');
  await page.emulateMedia({ colorScheme: 'dark' });
  await check('narrow, dark');
  await page.setViewportSize({ width: 1440, height: 900 });
  await check('dark');
  assert.deepEqual(events.errors, []);
});

test('the element answers the store audit: the images dropped, its domain XML and more VMs given to audit()', { skip }, async (t) => {
  const d = subdir('element-audit');
  const c = makeChain(d); // base ← mid ← top
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'base.qcow2', join(d, 'clone.qcow2'));
  qemuImg('create', '-q', '-f', 'qcow2', join(d, 'spare.qcow2'), '64M');
  const vm = (name, file) => `<domain type='kvm'><name>${name}</name><memory>524288</memory><os><type>hvm</type></os><devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${file}'/><target dev='vda' bus='virtio'/></disk>
</devices></domain>`;
  const { page, events } = await openPage(t);
  const el = page.locator(EL);
  await el.evaluate((e, x) => (e.domainXml = x), vm('web1', join(d, 'top.qcow2')));
  await dropFiles(page, EL, [c.top, c.mid, c.base, join(d, 'clone.qcow2'), join(d, 'spare.qcow2')]);
  await waitTree(page, 5);
  const r = await el.evaluate((e, x) => e.audit([{ label: 'web2.xml', text: x }]), vm('web2', join(d, 'clone.qcow2')));
  const byName = Object.fromEntries(r.report.images.map((im) => [im.filename.slice(im.filename.lastIndexOf('/') + 1), im]));
  assert.equal(byName['top.qcow2'].role, 'in-use');
  assert.equal(byName['clone.qcow2'].role, 'in-use');
  assert.equal(byName['mid.qcow2'].role, 'layer');
  assert.equal(byName['base.qcow2'].role, 'layer');
  assert.equal(byName['spare.qcow2'].role, 'orphan-top');
  // The shared base: both VMs use it; deleting it is not safe, the spare is.
  assert.deepEqual(byName['base.qcow2'].users.map((u) => u.name).sort(), ['web1', 'web2']);
  assert.notEqual(byName['base.qcow2'].delete.verdict, 'safe');
  assert.equal(byName['spare.qcow2'].delete.verdict, 'safe');
  assert.deepEqual(r.report.vms.map((v) => v.name).sort(), ['web1', 'web2']);
  assert.match(r.script, /^#!\/bin\/sh/);
  assert.deepEqual(events.errors, []);
});
