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
import { launch, dropFiles } from '../support/browser.mjs';
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

async function openPage(t, { width } = {}) {
  const page = await browser.context.newPage();
  const events = { errors: [] };
  page.on('pageerror', (e) => events.errors.push(e.message));
  t.after(() => page.close());
  if (width) await page.setViewportSize({ width, height: 900 });
  await page.goto(origin + '/');
  await page.locator(EL).evaluate((e) => e.ready);
  return { page, events };
}

function subdir(name) {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  return d;
}

async function waitTree(page, n) {
  await page.waitForFunction(
    (n) => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('li[role=treeitem][data-image]').length >= n,
    n,
  );
}

/** The tops of the tree in order, as shown (image items of level 1, not hidden). */
function tops(page) {
  return page.locator(EL).evaluate((el) => [...el.shadowRoot.querySelectorAll('ul[role=tree] > li[role=treeitem]')].map((li) => li.querySelector(':scope > .row .name').textContent));
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
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('ul[role=tree] > li').length === 1);
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
