// The page in Chromium: real qemu-img images dropped with trusted CDP drag
// events or given to the file picker; the tree, the XML, errors, security.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync, copyFileSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, WWW } from '../support/server.mjs';
import { launch, dropFiles, dropText, corePanic, ARTIFACTS } from '../support/browser.mjs';
import { haveQemuImg, makeChain, qemuImg, qemuInfo, forgetBackingFormat } from '../support/images.mjs';
import { forestLayout, templates } from './bench-support.mjs';

const skip = haveQemuImg() ? false : 'qemu-img is not installed';
// The page's own files: the page, its CSS, the ES modules of www/ (the
// element is split in several), the wasm and its glue. Nothing else is fetched.
const ASSETS = new Set([
  '/', '/page.css', ...readdirSync(WWW).filter((f) => f.endsWith('.js')).map((f) => `/${f}`),
  '/pkg/backing_chain.js', '/pkg/backing_chain_bg.wasm',
  // The on-demand module (edits, audit, walks), fetched when the user edits or asks.
  '/pkg/backing_chain_meta.js', '/pkg/backing_chain_meta_bg.wasm',
]);

let server;
let origin;
let browser;
let dir;
let requests = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bce-page-'));
  server = await startServer();
  origin = `http://127.0.0.1:${server.address().port}`;
  browser = await launch();
  await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  browser.context.on('request', (r) => requests.push(r.url()));
});

after(async () => {
  await browser?.close();
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A fresh page on the app, with dialogs and page errors recorded. */
async function openPage(t, path = '/', { init } = {}) {
  const page = await browser.context.newPage();
  const events = { dialogs: [], errors: [] };
  page.on('dialog', (d) => {
    events.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => events.errors.push(e.message));
  t.after(() => page.close());
  if (init) await page.addInitScript(init);
  await page.goto(origin + path);
  await page.locator('backing-chain-editor').evaluate((e) => e.ready);
  return { page, events };
}

function subdir(name) {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  return d;
}

/** The tree as [{level, name, format}] (image items only). */
function treeOf(page) {
  return page.locator('backing-chain-editor').evaluate((el) =>
    [...el.shadowRoot.querySelectorAll('li[role=treeitem][data-image]')].map((li) => ({
      level: Number(li.getAttribute('aria-level')),
      name: li.querySelector(':scope > .row > .name').textContent,
      format: li.querySelector(':scope > .row > .badge')?.textContent,
    })),
  );
}

function xmlText(page) {
  return page.locator('backing-chain-editor pre.xml').innerText();
}

function xpath(xml, expr) {
  return execFileSync('xmllint', ['--xpath', expr, '-'], { input: xml, encoding: 'utf8' }).trim();
}

async function waitTree(page, n) {
  await page.waitForFunction(
    (n) => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('li[role=treeitem][data-image]').length >= n,
    n,
  );
}

test('dropping a base/mid/top qcow2 set shows the chain top → base and the nested XML', { skip }, async (t) => {
  const d = subdir('drop');
  const f = makeChain(d, { size: '2G' });
  requests = [];
  const { page, events } = await openPage(t);
  await dropFiles(page, 'backing-chain-editor', [f.base, f.top, f.mid]);
  await waitTree(page, 3);
  assert.deepEqual(await treeOf(page), [
    { level: 1, name: 'top.qcow2', format: 'qcow2' },
    { level: 2, name: 'mid.qcow2', format: 'qcow2' },
    { level: 3, name: 'base.qcow2', format: 'qcow2' },
  ]);
  const end = await page.locator('backing-chain-editor li[role=treeitem] > .end').innerText();
  assert.match(end, /end of chain/);
  // Virtual size as qemu-img sees it, and the bytes read per image.
  assert.equal(qemuInfo(f.top)['virtual-size'], 2 * 1024 ** 3);
  const rows = await page.locator('backing-chain-editor li[data-image] > .row').allInnerTexts();
  for (const r of rows) {
    assert.match(r, /2 GiB/);
    // 4 KiB of header, and the 7 bytes of an ISO 9660 descriptor at 32 KiB
    // (a second format behind the qcow2 header is flagged).
    assert.doesNotMatch(r, /read/);
  }
  // How much was read is a tooltip on the size, not text in the row: one
  // read from the file from the header to the 7 bytes at 32768, of which the
  // core used those ranges.
  for (const title of await page.locator('backing-chain-editor li[data-image] > .row .size').evaluateAll((els) => els.map((e) => e.title))) {
    assert.match(title, /read 32\.0 KiB of the file in 1 read, of which the probe used 4\.0 KiB \(4,103 bytes: its header\)/);
  }
  const xml = await xmlText(page);
  assert.equal(xpath(xml, 'string(/disk/source/@file)'), 'top.qcow2');
  assert.equal(xpath(xml, 'string(/disk/driver/@type)'), 'qcow2');
  assert.equal(xpath(xml, 'string(/disk/backingStore/source/@file)'), 'mid.qcow2');
  assert.equal(xpath(xml, 'string(/disk/backingStore/format/@type)'), 'qcow2');
  assert.equal(xpath(xml, 'string(/disk/backingStore/backingStore/source/@file)'), 'base.qcow2');
  assert.equal(xpath(xml, 'count(/disk/backingStore/backingStore/backingStore)'), '1');
  assert.equal(xpath(xml, 'count(/disk/backingStore/backingStore/backingStore/node())'), '0');
  // Set the base directory: absolute paths, the relative-path warnings go.
  const diagsBefore = await page.locator('backing-chain-editor .diags li').allInnerTexts();
  assert.ok(diagsBefore.some((x) => /relative-path/.test(x)));
  await page.locator('backing-chain-editor .domain input[type=text]').fill('/var/lib/libvirt/images');
  await page.locator('backing-chain-editor .domain input[type=text]').press('Enter');
  await page.locator('backing-chain-editor .domain input[type=text]').blur();
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('pre.xml').textContent.includes('/var/lib/libvirt/images/base.qcow2'));
  const xml2 = await xmlText(page);
  assert.equal(xpath(xml2, 'string(/disk/backingStore/backingStore/source/@file)'), '/var/lib/libvirt/images/base.qcow2');
  assert.equal(await page.locator('backing-chain-editor .diags li').count(), 0);
  // Details of the selected node.
  await page.locator('backing-chain-editor li[data-image] > .row >> text=mid.qcow2').click();
  // The details come from their own module (imported on the first selection): wait for this image's.
  await page.locator('backing-chain-editor .details h3', { hasText: 'mid.qcow2' }).waitFor();
  const details = await page.locator('backing-chain-editor .details').innerText();
  assert.match(details, /Backing name \(as written\)\s+base\.qcow2/);
  assert.match(details, /Backing format \(recorded\)\s+qcow2/);
  assert.match(details, /Backing format \(detected\)\s+qcow2/);
  assert.match(details, /Bytes read\s+4,103 bytes in 2 ranges \(from the file: 32,775 bytes in 1 read\)/);
  await page.screenshot({ path: join(ARTIFACTS, 'page-chain.png'), fullPage: true });
  assert.deepEqual(events.errors, []);
  // Nothing but the page's own assets was requested.
  for (const u of requests) {
    if (u.startsWith('data:') || u.startsWith('blob:')) continue;
    const url = new URL(u);
    assert.equal(url.origin, origin, u);
    assert.ok(ASSETS.has(url.pathname), `unexpected request ${u}`);
  }
  assert.ok(requests.some((u) => u.endsWith('/pkg/backing_chain_bg.wasm')));
});

test('the file picker (setInputFiles) gives the same tree; dropping more adds to the set', { skip }, async (t) => {
  const d = subdir('picker');
  const f = makeChain(d);
  const { page } = await openPage(t);
  await page.locator('backing-chain-editor input[type=file]:not([webkitdirectory])').setInputFiles([f.top, f.mid]);
  await waitTree(page, 2);
  assert.deepEqual((await treeOf(page)).map((x) => x.name), ['top.qcow2', 'mid.qcow2']);
  assert.match(await page.locator('backing-chain-editor li[role=treeitem] > .end').innerText(), /missing: base\.qcow2/);
  await page.locator('backing-chain-editor input[type=file]:not([webkitdirectory])').setInputFiles([f.base]);
  await waitTree(page, 3);
  assert.deepEqual(await treeOf(page), [
    { level: 1, name: 'top.qcow2', format: 'qcow2' },
    { level: 2, name: 'mid.qcow2', format: 'qcow2' },
    { level: 3, name: 'base.qcow2', format: 'qcow2' },
  ]);
  assert.match(await xmlText(page), /<backingStore\/>/);
});

test('a missing base shows its diagnostic, and no terminator is written', { skip }, async (t) => {
  const d = subdir('missing');
  const f = makeChain(d);
  const { page } = await openPage(t);
  await dropFiles(page, 'backing-chain-editor', [f.top, f.mid]);
  await waitTree(page, 2);
  const end = page.locator('backing-chain-editor li[role=treeitem] > .end');
  assert.match(await end.innerText(), /missing: base\.qcow2/);
  assert.ok(await end.evaluate((e) => e.classList.contains('bad')));
  const diag = page.locator('backing-chain-editor .diags li[data-code=missing-backing]');
  assert.equal(await diag.count(), 1);
  assert.match(await diag.innerText(), /error/);
  assert.match(await diag.innerText(), /base\.qcow2/);
  // The diagnostic is shown on the node that names the missing file.
  const onMid = page.locator('backing-chain-editor li[data-image]:has(> .row .name:text-is("mid.qcow2")) > .diag[data-code=missing-backing]');
  assert.equal(await onMid.count(), 1);
  const xml = await xmlText(page);
  assert.doesNotMatch(xml, /<backingStore\/>/);
  assert.equal(xpath(xml, 'string(/disk/backingStore/source/@file)'), 'mid.qcow2');
  // Clicking the diagnostic selects its node.
  await diag.locator('button').click();
  assert.match(await page.locator('backing-chain-editor .details h3').innerText(), /mid\.qcow2/);
  await page.screenshot({ path: join(ARTIFACTS, 'page-missing-base.png'), fullPage: true });
});

test('an unrecorded backing format shows the fix command, and Copy puts it on the clipboard', { skip }, async (t) => {
  const d = subdir('unrecorded');
  const f = makeChain(d);
  forgetBackingFormat(f.top);
  const { page } = await openPage(t);
  await dropFiles(page, 'backing-chain-editor', [f.top, f.mid, f.base]);
  await waitTree(page, 3);
  const node = page.locator('backing-chain-editor li[data-image]:has(> .row .name:text-is("top.qcow2")) > .diag[data-code=backing-format-not-recorded]');
  assert.equal(await node.count(), 1);
  const fix = await node.locator('code').innerText();
  assert.match(fix, /^qemu-img rebase -u .*-F qcow2 .*top\.qcow2$/);
  await node.locator('button').click();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), fix);
  // The command does what it says on the real file.
  const argv = fix.split(' ').slice(1);
  argv[argv.length - 1] = f.top;
  qemuImg(...argv);
  assert.equal(qemuInfo(f.top)['backing-filename-format'], 'qcow2');
  await page.screenshot({ path: join(ARTIFACTS, 'page-unrecorded-format.png'), fullPage: true });
});

// Canary and CSP listener, installed before any of the page's scripts run:
// a payload that turned into markup or script would set window.__xss or,
// blocked by the CSP, fire a securitypolicyviolation event.
function xssWatch() {
  window.__xss = 0;
  window.__violations = [];
  const note = (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`);
  window.addEventListener('securitypolicyviolation', note, true);
  document.addEventListener('securitypolicyviolation', note, true);
  window.alert = window.confirm = window.prompt = () => {
    window.__xss = -1;
  };
}

/** Every element of the document and of every shadow root in it. */
function allElements(page) {
  return page.evaluate(() => {
    const out = [];
    const walk = (root) => {
      for (const el of root.querySelectorAll('*')) {
        out.push({
          tag: el.localName,
          on: [...el.attributes].filter((a) => /^on/i.test(a.name)).map((a) => a.name),
          href: el.getAttribute('href') ?? el.getAttribute('src') ?? el.getAttribute('xlink:href') ?? '',
        });
        if (el.shadowRoot) walk(el.shadowRoot);
      }
    };
    walk(document);
    return out;
  });
}

test('hostile names (files, backing names, domain XML) render as text: nothing runs, no markup, no CSP violation', { skip }, async (t) => {
  const d = subdir('xss');
  // File names (no '/' possible in a name: a <script> payload without its end tag).
  const imgName = '<img src=x onerror=window.__xss=1>.qcow2';
  const svgName = '"><svg onload=window.__xss=4>.qcow2';
  const tplName = '{{7*7}}.qcow2';
  const scriptName = "<script>window.__xss=5<.qcow2";
  // Backing names written into the headers.
  const scriptBacking = '<script>window.__xss=2</script>.qcow2';
  const jsBacking = 'javascript:window.__xss=3';
  const jsonBacking = 'json:{"driver":"qcow2","file":{"driver":"file","filename":"<img src=x onerror=window.__xss=6>"}}';
  const evil = join(d, imgName);
  qemuImg('create', '-q', '-f', 'qcow2', evil, '1M');
  qemuImg('rebase', '-u', '-F', 'qcow2', '-b', scriptBacking, evil);
  const svg = join(d, svgName);
  qemuImg('create', '-q', '-f', 'qcow2', svg, '1M');
  qemuImg('rebase', '-u', '-F', 'raw', '-b', jsBacking, svg);
  const tpl = join(d, tplName);
  qemuImg('create', '-q', '-f', 'qcow2', tpl, '1M');
  const scr = join(d, scriptName);
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', tplName, scr);
  const json = join(d, 'json.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', json, '1M');
  qemuImg('rebase', '-u', '-F', 'qcow2', '-b', jsonBacking, json);
  // The headers say what we wrote (qemu-img reads them back).
  assert.equal(qemuInfo(evil)['backing-filename'], scriptBacking);
  assert.equal(qemuInfo(svg)['backing-filename'], jsBacking);
  // The older case: a backing name containing <script> that resolves, through a directory.
  mkdirSync(join(d, '<script>alert(2)<'));
  qemuImg('create', '-q', '-f', 'qcow2', join(d, '<script>alert(2)<', 'script>.qcow2'), '1M');
  const top = join(d, 'top.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', '<script>alert(2)</script>.qcow2', top);

  requests = [];
  const { page, events } = await openPage(t, '/', { init: xssWatch });
  await dropFiles(page, 'backing-chain-editor', [evil, svg, tpl, scr, json, top]);
  await waitTree(page, 6);
  const names = (await treeOf(page)).map((x) => x.name).sort();
  assert.deepEqual(names, [svgName, scriptName, imgName, 'json.qcow2', 'top.qcow2', tplName].sort());
  // {{7*7}} is the overlay's base: shown literally, under its overlay.
  const tree = await treeOf(page);
  const at = tree.findIndex((x) => x.name === scriptName);
  assert.deepEqual(tree[at + 1], { level: tree[at].level + 1, name: tplName, format: 'qcow2' });
  // Backing names as written, in the details, as text.
  const details = async (name) => {
    await page.locator('backing-chain-editor li[data-image] > .row > .name', { hasText: name }).first().click();
    await page.locator('backing-chain-editor .details h3', { hasText: name }).waitFor();
    return page.locator('backing-chain-editor .details').innerText();
  };
  assert.ok((await details(imgName)).includes(scriptBacking));
  assert.ok((await details(svgName)).includes(jsBacking));
  assert.ok((await details('json.qcow2')).includes(jsonBacking));
  assert.match(await details('top.qcow2'), /<script>alert\(2\)<\/script>\.qcow2/);
  assert.match(await xmlText(page), /<source file='&lt;img src=x onerror=window\.__xss=1&gt;\.qcow2'( index='\d+')?\/>/);

  // A pasted domain XML with payloads in attribute values, text and a comment.
  // vda's source is the <img …> image (its backing is missing: the chain is
  // not written); vdb's is the <script … image, whose base is {{7*7}}.
  const domain = `<domain type='kvm'>
  <name>&lt;script&gt;window.__xss=7&lt;/script&gt;</name>
  <!-- <img src=x onerror=window.__xss=8> --><description>"&gt;&lt;svg onload=window.__xss=9&gt; {{7*7}}</description>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/images/&lt;img src=x onerror=window.__xss=1&gt;.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <serial>javascript:window.__xss=10</serial>
      <alias name='"&gt;&lt;svg onload=window.__xss=11&gt;'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/images/&lt;script&gt;window.__xss=5&lt;.qcow2'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
  </devices>
</domain>
`;
  await page.locator('backing-chain-editor textarea').fill(domain);
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('pre.xml').textContent.includes('<domain'));
  const xml = await xmlText(page);
  // The XML shown parses, and its values are the payloads as data (xmllint decides).
  assert.equal(xpath(xml, 'string(/domain/name)'), '<script>window.__xss=7</script>');
  assert.equal(xpath(xml, 'string(/domain/description)'), '"><svg onload=window.__xss=9> {{7*7}}');
  assert.equal(xpath(xml, 'string(/domain/comment())'), '<img src=x onerror=window.__xss=8>'); // (xpath() trims)
  assert.equal(xpath(xml, "string(//disk[target/@dev='vda']/serial)"), 'javascript:window.__xss=10');
  assert.equal(xpath(xml, "string(//disk[target/@dev='vda']/alias/@name)"), '"><svg onload=window.__xss=11>');
  assert.equal(xpath(xml, "string(//disk[target/@dev='vda']/source/@file)"), `/images/${imgName}`);
  assert.equal(xpath(xml, "string(//disk[target/@dev='vdb']/backingStore/source/@file)"), `/images/${tplName}`);
  // The chains view and diagnostics show the names as text too.
  const shown = await page.locator('backing-chain-editor').evaluate((el) => el.shadowRoot.textContent);
  for (const p of [imgName, svgName, tplName, scriptName, scriptBacking]) {
    assert.ok(shown.includes(p), `not shown as text: ${p}`);
  }
  // In the XML pane, the XML's own escaping shows.
  assert.ok(xml.includes('<name>&lt;script&gt;window.__xss=7&lt;/script&gt;</name>'));
  // Flat layout: the same values, again as text.
  await page.locator('backing-chain-editor label >> text=Flat (proposal)').click();
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('pre.xml').textContent.includes(' parent='));
  const flat = await xmlText(page);
  assert.equal(xpath(flat, "string(//disk[target/@dev='vdb']/backingStore[1]/source/@file)"), `/images/${tplName}`);
  assert.equal(xpath(flat, 'string(/domain/name)'), '<script>window.__xss=7</script>');

  // Let anything a payload could have started run: two frames painted and
  // no request in flight (an <img onerror> fires after its failed load).
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await page.waitForLoadState('networkidle');
  // Nothing from a payload exists as an element, in the document or any shadow root.
  const els = await allElements(page);
  assert.deepEqual(els.filter((e) => ['img', 'script', 'svg', 'iframe', 'object', 'embed'].includes(e.tag)).map((e) => e.tag), ['script']);
  assert.deepEqual(els.filter((e) => e.on.length), []);
  assert.deepEqual(els.filter((e) => /javascript:/i.test(e.href)), []);
  // The one <script> is the page's own module.
  assert.equal(await page.evaluate(() => document.querySelector('script').getAttribute('src')), 'app.js');
  assert.equal(await page.evaluate(() => window.__xss), 0);
  assert.deepEqual(await page.evaluate(() => window.__violations), []);
  assert.deepEqual(events.dialogs, []);
  assert.deepEqual(events.errors, []);
  // No payload fetched anything (an <img src=x> would have asked for /x).
  for (const u of requests) {
    if (u.startsWith('data:') || u.startsWith('blob:')) continue;
    assert.ok(ASSETS.has(new URL(u).pathname), `unexpected request ${u}`);
  }
  // Control: the listener does see a violation (an inline handler, made here on purpose).
  await page.evaluate(() => {
    const b = document.createElement('button');
    b.setAttribute('onclick', 'window.__xss = 99');
    document.body.append(b);
    b.click();
    b.remove();
  });
  await page.waitForFunction(() => window.__violations.length > 0);
  assert.equal(await page.evaluate(() => window.__xss), 0);
});

const DOMAIN = `<domain type='kvm'>
  <name>web1</name>
  <!-- a comment that must survive -->
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/top.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
`;

test('a pasted domain XML gets its disk populated; malformed XML shows the error and keeps the last good state', { skip }, async (t) => {
  const d = subdir('domain');
  const f = makeChain(d);
  const { page } = await openPage(t);
  await dropFiles(page, 'backing-chain-editor', [f.top, f.mid, f.base]);
  await waitTree(page, 3);
  const ta = page.locator('backing-chain-editor textarea');
  await ta.fill(DOMAIN);
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('pre.xml').textContent.includes('web1'));
  const xml = await xmlText(page);
  assert.equal(xpath(xml, "string(//disk[target/@dev='vda']/backingStore/source/@file)"), '/var/lib/libvirt/images/mid.qcow2');
  assert.equal(xpath(xml, "string(//disk[target/@dev='vda']/backingStore/backingStore/source/@file)"), '/var/lib/libvirt/images/base.qcow2');
  assert.ok(xml.includes('<!-- a comment that must survive -->'));
  assert.match(await page.locator('backing-chain-editor .parse').innerText(), /well-formed/);
  // Break it: line 5 loses the '>' of <disk …>.
  const broken = DOMAIN.replace("<disk type='file' device='disk'>", "<disk type='file' device='disk'").replace('</domain>', '<oops');
  await ta.fill(broken);
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('.parse.error'));
  const msg = await page.locator('backing-chain-editor .parse').innerText();
  assert.match(msg, /^line \d+, column \d+: /);
  assert.equal(await ta.getAttribute('aria-invalid'), 'true');
  // The last good result stays on screen, with a note.
  assert.equal(await xmlText(page), xml);
  assert.ok(await page.locator('backing-chain-editor .note >> text=last valid').isVisible());
  await page.screenshot({ path: join(ARTIFACTS, 'page-xml-error.png'), fullPage: true });
  // "Go to the error" puts the caret in the textarea at the reported place.
  await page.locator('backing-chain-editor button >> text=Go to the error').click();
  const caret = await ta.evaluate((e) => ({ focused: e.getRootNode().activeElement === e, at: e.selectionStart }));
  assert.equal(caret.focused, true);
  const line = Number(/^line (\d+)/.exec(msg)[1]);
  assert.equal(broken.slice(0, caret.at).split('\n').length, line);
  // Fix it again: the error goes.
  await ta.fill(DOMAIN);
  await page.waitForFunction(() => !document.querySelector('backing-chain-editor').shadowRoot.querySelector('.parse.error'));
  assert.equal(await xmlText(page), xml);
});


test('a Rust panic is reported in the page and a fresh core takes over with the last good state', { skip }, async (t) => {
  const d = subdir('panic');
  const f = makeChain(d);
  const g = makeChain(d, { base: 'b2.qcow2', mid: 'm2.qcow2', top: 't2.qcow2' });
  const { page, events } = await openPage(t);
  const ta = page.locator('backing-chain-editor textarea');
  await ta.fill(DOMAIN);
  await dropFiles(page, 'backing-chain-editor', [f.top, f.mid, f.base]);
  await waitTree(page, 3);
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('pre.xml').textContent.includes('web1'));
  const before = await xmlText(page);
  assert.equal(xpath(before, "string(//disk[target/@dev='vda']/backingStore/backingStore/source/@file)"), '/var/lib/libvirt/images/base.qcow2');
  requests = [];
  // A real panic inside the wasm instance the element uses (the same glue module).
  const trap = await corePanic(page, '/pkg/backing_chain.js');
  assert.match(trap, /^RuntimeError: /);
  const el = page.locator('backing-chain-editor');
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').dataset.wasm === 'recovered');
  // The message, as text, in an alert.
  const status = el.locator('.status');
  assert.equal(await status.getAttribute('role'), 'alert');
  // The core's panic hook gave the message: where in the core, and why.
  assert.match(await status.innerText(), /backing-chain internal error: panicked at src\/xml\/\S+\.rs:\d+:\d+:.*byte index \d+ is not a char boundary/);
  assert.match(await status.innerText(), /restarted/);
  assert.equal(await status.evaluate((s) => s.querySelectorAll('.panic *').length), 0);
  await page.screenshot({ path: join(ARTIFACTS, 'page-panic-recovered.png'), fullPage: true });
  // The last good state: same tree, same XML, and the forest is the fresh core's.
  assert.deepEqual((await treeOf(page)).map((x) => x.name), ['top.qcow2', 'mid.qcow2', 'base.qcow2']);
  assert.equal(await xmlText(page), before);
  assert.equal(await el.evaluate((e) => e.forest.images.length), 3);
  // The one extra request: a second copy of the glue module (the .wasm is not fetched again).
  assert.deepEqual(requests.map((u) => new URL(u).pathname + new URL(u).search), ['/pkg/backing_chain.js?instance=1']);
  // Everything still works: drop more files…
  await dropFiles(page, 'backing-chain-editor', [g.base, g.mid, g.top]);
  await waitTree(page, 6);
  const tree = await treeOf(page);
  assert.deepEqual(
    tree.map((x) => `${x.level} ${x.name}`).sort(),
    ['1 t2.qcow2', '2 m2.qcow2', '3 b2.qcow2', '1 top.qcow2', '2 mid.qcow2', '3 base.qcow2'].sort(),
  );
  // …toggle the layout…
  await page.locator('backing-chain-editor label >> text=Flat (proposal)').click();
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('pre.xml').textContent.includes(' parent='));
  const flat = await xmlText(page);
  assert.equal(xpath(flat, "count(//disk[target/@dev='vda']/backingStore)"), '3');
  assert.equal(xpath(flat, "string(//disk[target/@dev='vda']/backingStore[2]/source/@file)"), '/var/lib/libvirt/images/base.qcow2');
  await page.locator('backing-chain-editor label >> text=Nested (libvirt)').click();
  await page.waitForFunction(() => !document.querySelector('backing-chain-editor').shadowRoot.querySelector('pre.xml').textContent.includes(' parent='));
  // …edit a layer (the base becomes a raw block device)…
  await el.evaluate((e) => e.edit({ op: 'set-layer', disk: 0, depth: 2, layer: { type: 'block', path: '/dev/vg/base', format: 'raw' } }));
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('pre.xml').textContent.includes('/dev/vg/base'));
  const edited = await xmlText(page);
  assert.equal(xpath(edited, "string(//disk[target/@dev='vda']/backingStore/source/@file)"), '/var/lib/libvirt/images/mid.qcow2');
  assert.equal(xpath(edited, "string(//disk[target/@dev='vda']/backingStore/backingStore/@type)"), 'block');
  assert.equal(xpath(edited, "string(//disk[target/@dev='vda']/backingStore/backingStore/source/@dev)"), '/dev/vg/base');
  assert.equal(xpath(edited, "string(//disk[target/@dev='vda']/backingStore/backingStore/format/@type)"), 'raw');
  // …and undo it.
  await el.evaluate((e) => e.undo());
  await page.waitForFunction(() => !document.querySelector('backing-chain-editor').shadowRoot.querySelector('pre.xml').textContent.includes('/dev/vg/base'));
  assert.equal(xpath(await xmlText(page), "string(//disk[target/@dev='vda']/backingStore/backingStore/source/@file)"), '/var/lib/libvirt/images/base.qcow2');
  // A second panic recovers too (a third instance), keeping all six images.
  await page.evaluate(() => (document.querySelector('backing-chain-editor').dataset.wasm = 'before the second panic'));
  // The instance now in use is the second copy of the glue's.
  assert.match(await corePanic(page, '/pkg/backing_chain.js?instance=1'), /^RuntimeError: /);
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').dataset.wasm === 'recovered');
  await waitTree(page, 6);
  assert.equal((await treeOf(page)).length, 6);
  assert.ok(requests.some((u) => u.endsWith('/pkg/backing_chain.js?instance=2')));
  assert.deepEqual(events.dialogs, []);
  assert.deepEqual(events.errors, []);
});

test('nested / flat toggle', { skip }, async (t) => {
  const d = subdir('toggle');
  const f = makeChain(d);
  const { page } = await openPage(t);
  await dropFiles(page, 'backing-chain-editor', [f.top, f.mid, f.base]);
  await waitTree(page, 3);
  const note = page.locator('backing-chain-editor .note >> text=proposal');
  assert.equal(await note.isVisible(), false);
  await page.locator('backing-chain-editor label >> text=Flat (proposal)').click();
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('pre.xml').textContent.includes('<alias'));
  const flat = await xmlText(page);
  assert.equal(xpath(flat, 'count(/disk/backingStore)'), '3');
  assert.equal(xpath(flat, 'count(/disk/backingStore/backingStore)'), '0');
  assert.equal(xpath(flat, 'string(/disk/backingStore[2]/alias/@parent)'), xpath(flat, 'string(/disk/backingStore[1]/alias/@name)'));
  assert.equal(await note.isVisible(), true);
  assert.equal(await page.locator('backing-chain-editor').evaluate((e) => e.layout), 'flat');
  await page.screenshot({ path: join(ARTIFACTS, 'page-flat.png'), fullPage: true });
  // Download gives the text shown.
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('backing-chain-editor button >> text=Download').click()]);
  assert.equal(download.suggestedFilename(), 'disks.flat.xml');
  const saved = join(d, 'saved.xml');
  await download.saveAs(saved);
  assert.equal(readFileSync(saved, 'utf8'), flat);
  await page.locator('backing-chain-editor label >> text=Nested (libvirt)').click();
  await page.waitForFunction(() => !document.querySelector('backing-chain-editor').shadowRoot.querySelector('pre.xml').textContent.includes('<alias'));
  assert.equal(xpath(await xmlText(page), 'count(/disk/backingStore/backingStore)'), '1');
});

test('the tree works from the keyboard (arrows, Home/End, Enter)', { skip }, async (t) => {
  const d = subdir('keys');
  const f = makeChain(d);
  const { page } = await openPage(t);
  await dropFiles(page, 'backing-chain-editor', [f.top, f.mid, f.base]);
  await waitTree(page, 3);
  const focused = () => page.locator('backing-chain-editor').evaluate((el) => el.shadowRoot.activeElement?.querySelector(':scope > .row')?.textContent ?? null);
  await page.locator('backing-chain-editor li[role=treeitem]').first().focus();
  assert.match(await focused(), /top\.qcow2/);
  await page.keyboard.press('ArrowDown');
  assert.match(await focused(), /mid\.qcow2/);
  await page.keyboard.press('End');
  // The end of the chain is part of its last layer, not an item of its own.
  assert.match(await focused(), /base\.qcow2/);
  assert.match(await page.locator('backing-chain-editor').evaluate((el) => el.shadowRoot.activeElement.textContent), /^\s*base\.qcow2 qcow2 1 GiB\s+end of chain/);
  await page.keyboard.press('Home');
  assert.match(await focused(), /top\.qcow2/);
  await page.keyboard.press('ArrowLeft'); // collapse top
  assert.equal(await page.locator('backing-chain-editor li[role=treeitem]').first().getAttribute('aria-expanded'), 'false');
  await page.keyboard.press('End');
  assert.match(await focused(), /top\.qcow2/, 'a collapsed subtree is skipped');
  await page.keyboard.press('ArrowRight'); // expand
  await page.keyboard.press('ArrowRight'); // to the first child
  assert.match(await focused(), /mid\.qcow2/);
  await page.keyboard.press('Enter');
  assert.match(await page.locator('backing-chain-editor .details h3').innerText(), /mid\.qcow2/);
  assert.equal(await page.locator('backing-chain-editor li[aria-selected=true] > .row .name').innerText(), 'mid.qcow2');
  // Only one item is in the tab order.
  assert.equal(await page.locator('backing-chain-editor li[role=treeitem][tabindex="0"]').count(), 1);
});

test('a folder drop reads every file inside; a shared base lists its overlays', { skip }, async (t) => {
  const d = subdir('folder/vm');
  const f = makeChain(d);
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'base.qcow2', join(d, 'other.qcow2'));
  mkdirSync(join(d, 'sub'));
  copyFileSync(f.base, join(d, 'sub', 'lonely.qcow2'));
  const { page } = await openPage(t);
  // Chromium's File System Access handles (the next test covers webkitGetAsEntry).
  assert.equal(await page.evaluate(() => 'getAsFileSystemHandle' in DataTransferItem.prototype), true);
  await dropFiles(page, 'backing-chain-editor', [d]);
  await waitTree(page, 5);
  const tree = await treeOf(page);
  // Named from inside the dropped folder (vm/ is not part of the path on the host).
  const names = tree.map((x) => `${x.level}:${x.name}`);
  assert.ok(names.includes('1:top.qcow2'), names.join(' '));
  assert.ok(names.includes('2:mid.qcow2'));
  assert.ok(names.includes('3:base.qcow2') || names.includes('2:base.qcow2'), names.join(' '));
  assert.ok(names.includes('1:other.qcow2'));
  assert.ok(names.includes('1:sub/lonely.qcow2'));
  // The shared base appears once (under the first chain), the other chain leads to it.
  assert.equal(names.filter((n) => n.endsWith(':base.qcow2')).length, 1, names.join(' '));
  const ref = page.locator('backing-chain-editor li[role=treeitem][data-ref]');
  assert.equal(await ref.count(), 1);
  assert.match(await ref.textContent(), /^↪ base\.qcow2 shared base, shown once, under (top|other)\.qcow2, shared by 2 overlays$/);
  const shared = page.locator('backing-chain-editor li[data-image]:has(> .row .name:text-is("base.qcow2")) > .row .badge >> text=shared by 2 overlays');
  assert.equal(await shared.count(), 1);
  await page.locator('backing-chain-editor li[data-image] > .row .name:text-is("base.qcow2")').first().click();
  await page.locator('backing-chain-editor .details h3', { hasText: 'base.qcow2' }).waitFor();
  const details = await page.locator('backing-chain-editor .details').innerText();
  assert.match(details, /Overlays \(2\)\s+mid\.qcow2, other\.qcow2|Overlays \(2\)\s+other\.qcow2, mid\.qcow2/);
  assert.match(details, /File size\s+\d+(\.\d)? KiB/);
  await page.screenshot({ path: join(ARTIFACTS, 'page-folder-shared-base.png'), fullPage: true });
});

test('without File System Access handles (other browsers) a drop of files and folders is read through webkitGetAsEntry', { skip }, async (t) => {
  const d = subdir('entries/vm');
  makeChain(d);
  mkdirSync(join(d, 'sub'));
  qemuImg('create', '-q', '-f', 'qcow2', join(d, 'sub', 'lonely.qcow2'), '1G');
  const loose = subdir('entries/loose');
  qemuImg('create', '-q', '-f', 'qcow2', join(loose, 'alone.qcow2'), '1G');
  const { page, events } = await openPage(t, '/', { init: () => delete DataTransferItem.prototype.getAsFileSystemHandle });
  assert.equal(await page.evaluate(() => 'getAsFileSystemHandle' in DataTransferItem.prototype), false);
  await dropFiles(page, 'backing-chain-editor', [d, join(loose, 'alone.qcow2')]);
  await waitTree(page, 5);
  const names = (await treeOf(page)).map((x) => `${x.level}:${x.name}`);
  assert.deepEqual(names.sort(), ['1:alone.qcow2', '1:vm/sub/lonely.qcow2', '1:vm/top.qcow2', '2:vm/mid.qcow2', '3:vm/base.qcow2']);
  // The file size came through (the details of the top say it).
  await page.locator('backing-chain-editor li[data-image] > .row >> text=vm/top.qcow2').click();
  await page.locator('backing-chain-editor .details h3', { hasText: 'vm/top.qcow2' }).waitFor();
  assert.match(await page.locator('backing-chain-editor .details').innerText(), /File size\s+\d+(\.\d)? KiB/);
  assert.deepEqual(events.errors, []);
});

test('narrow (360 px) and dark', { skip }, async (t) => {
  const d = subdir('narrow');
  const f = makeChain(d);
  const { page } = await openPage(t);
  await page.setViewportSize({ width: 360, height: 800 });
  await page.emulateMedia({ colorScheme: 'dark' });
  await dropFiles(page, 'backing-chain-editor', [f.top, f.mid, f.base]);
  await waitTree(page, 3);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 360, `page is ${overflow}px wide`);
  const bg = await page.locator('backing-chain-editor section.forest').evaluate((e) => getComputedStyle(e).backgroundColor);
  const [r, g, b] = bg.match(/\d+/g).map(Number);
  assert.ok(r + g + b < 200, `dark surface, got ${bg}`);
  await page.screenshot({ path: join(ARTIFACTS, 'page-360-dark.png'), fullPage: true });
});

test('the empty state says what to do', async (t) => {
  const { page } = await openPage(t);
  assert.match(await page.locator('backing-chain-editor .empty').first().innerText(), /Drop qcow2/);
  assert.equal(await page.locator('#boot').count(), 0, 'the boot message is gone once scripts run');
  await page.screenshot({ path: join(ARTIFACTS, 'page-empty.png') });
});

test('dropping a domain XML file fills the editor', { skip }, async (t) => {
  const d = subdir('xmlfile');
  const f = makeChain(d);
  const x = join(d, 'web1.xml');
  writeFileSync(x, DOMAIN);
  const { page } = await openPage(t);
  await dropFiles(page, 'backing-chain-editor', [x, f.top, f.mid, f.base]);
  await waitTree(page, 3);
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('pre.xml').textContent.includes('web1'));
  assert.equal(await page.locator('backing-chain-editor textarea').inputValue(), DOMAIN);
  assert.equal(xpath(await xmlText(page), "string(//disk/backingStore/source/@file)"), '/var/lib/libvirt/images/mid.qcow2');
});

test('a large set (300 images, 180 chains): the tree shows its first screenful at once and every chain a few tasks later; the XML, the chains in the XML and the diagnostics appear as they come into view, with the right content', { skip }, async (t) => {
  // Headers made by qemu-img (a base, and an overlay whose backing name is
  // patched per image), read from memory through addImage.
  const tpl = templates(subdir('large-tpl'));
  const layout = forestLayout(300);
  const tops = layout.filter((e) => !layout.some((o) => o.backing === e.name)).length;
  const { page, events } = await openPage(t, '/', { init: xssWatch });
  const b64 = (u8) => Buffer.from(u8).toString('base64');
  await page.evaluate(
    async ({ base, top, nameAt, layout }) => {
      const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
      const el = document.querySelector('backing-chain-editor');
      el.addEventListener('backing-chain-editor-diagnostics', (e) => (window.__diags = e.detail.diagnostics));
      await Promise.all(
        layout.map((e) => {
          let data = bytes(base.b64);
          if (e.backing) {
            data = bytes(top.b64);
            data.set(new TextEncoder().encode(e.backing), nameAt);
          }
          return el.addImage(e.name, async (o, l) => data.slice(o, o + l), { size: e.backing ? top.size : base.size });
        }),
      );
      // Over 200 images and no domain XML: the tree first; the XML and the
      // views made from it in later tasks (busy till then).
      const r = el.shadowRoot;
      window.__atFirst = { busy: [...r.querySelectorAll('[aria-busy=true]')].length, tree: r.querySelectorAll('ul[role=tree] > li[role=treeitem]').length, xml: r.querySelector('pre.xml')?.textContent ?? '' };
    },
    { base: { b64: b64(tpl.base.bytes), size: tpl.base.size }, top: { b64: b64(tpl.top.bytes), size: tpl.top.size }, nameAt: tpl.nameAt, layout },
  );
  const el = page.locator('backing-chain-editor');
  const state = () =>
    el.evaluate((el) => {
      const r = el.shadowRoot;
      const pieces = [...r.querySelectorAll('pre.xml .piece')];
      return {
        tops: r.querySelectorAll('ul[role=tree] > li[role=treeitem][aria-level="1"][data-image]').length,
        ends: r.querySelectorAll('ul[role=tree] li[role=treeitem] > .end').length,
        refs: r.querySelectorAll('ul[role=tree] li[role=treeitem][data-ref]').length,
        pieces: pieces.length,
        lit: pieces.map((p) => (p.querySelector('.x-tag') ? 1 : 0)).join(''),
        textIsXml: r.querySelector('pre.xml').textContent === el.getXml(),
        groups: [...r.querySelectorAll('.chains .disk-group')].map((g) => g.querySelectorAll('.disk').length),
        diags: r.querySelectorAll('.diags li:not(.pending)').length,
        pending: r.querySelectorAll('.diags li.pending').length,
      };
    });
  // The tree: its first items at once (at least a screenful), then every
  // chain, each with how it ends.
  const first = await el.evaluate((el) => el.shadowRoot.querySelectorAll('ul[role=tree] > li[role=treeitem]').length);
  assert.ok(first >= 40, `${first} items at first`);
  await page.waitForFunction((n) => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('ul[role=tree] > li[role=treeitem][aria-level="1"][data-image]').length === n, tops);
  const atFirst = await page.evaluate(() => window.__atFirst);
  assert.ok(atFirst.tree >= 40 && atFirst.busy >= 2 && !atFirst.xml.includes('<disk'), JSON.stringify(atFirst));
  await page.waitForFunction(() => !document.querySelector('backing-chain-editor').shadowRoot.querySelector('[aria-busy=true]'));
  let s = await state();
  assert.equal(s.tops, tops);
  // Collapsed (past 40 chains), each chain is its top item only; opened, …
  assert.equal(s.ends + s.refs, 0);
  await el.locator('button[data-act=expand-all]').click();
  s = await state();
  assert.equal(s.tops, tops);
  // … each chain ends once: at its base, or where it joins a shared base shown under an earlier chain.
  assert.equal(s.ends + s.refs, tops);
  // The XML: all of its text is in the pane, in pieces; the top piece is
  // highlighted, the last (far below the pane's visible part) not yet.
  assert.ok(s.textIsXml);
  assert.ok(s.pieces > 4, `${s.pieces} pieces`);
  assert.equal(s.lit[0], '1');
  assert.equal(s.lit[s.pieces - 1], '0');
  // The chains in the XML: groups of 20 disks, none rendered far off screen.
  assert.deepEqual(s.groups, Array(Math.ceil(tops / 20)).fill(0));
  // The diagnostics (one relative-path warning per image, and one saying the
  // names were written relative): groups, not yet rendered.
  assert.equal(s.diags, 0);
  assert.equal(s.pending, Math.ceil((300 + 1) / 50));

  // Scrolled to its end, the XML pane highlights the last piece, with the
  // spans the whole document gets (pieces are never cut inside a tag).
  await el.locator('pre.xml').evaluate((pre) => (pre.scrollTop = pre.scrollHeight));
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('pre.xml .piece:last-child .x-tag'));
  const tail = await el.evaluate(async (el) => {
    const { highlightXml } = await import('/render.js');
    const spans = (nodes) => [...nodes].filter((n) => n.className).map((n) => `${n.className}:${n.textContent}`);
    const whole = spans(highlightXml(el.getXml()).childNodes);
    const last = spans(el.shadowRoot.querySelector('pre.xml .piece:last-child').childNodes);
    return { last, whole: whole.slice(-last.length), pieces: [...el.shadowRoot.querySelectorAll('pre.xml .piece')].map((p) => p.textContent).join('') === el.getXml() };
  });
  assert.ok(tail.last.length > 50);
  assert.deepEqual(tail.last, tail.whole);
  assert.ok(tail.pieces);
  assert.ok((await state()).textIsXml);

  // The last group of disks, scrolled into view: its 20 disks, each row the
  // layer the XML states (the XML's <source>s of that disk, below the top).
  await el.locator('.chains .disk-group').last().scrollIntoViewIfNeeded();
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('.chains .disk-group:last-child .disk').length > 0);
  const lastGroup = () =>
    el.evaluate((el) => {
      const disks = [...el.shadowRoot.querySelectorAll('.chains .disk-group:last-child .disk')];
      const xml = el.getXml().split('<disk ').slice(1);
      return disks.map((d) => ({
        disk: Number(d.dataset.disk),
        rows: [...d.querySelectorAll('td[data-field=place]')].map((td) => td.textContent).filter((x) => x !== '—'),
        xml: [...xml[Number(d.dataset.disk)].matchAll(/<source file='([^']*)'/g)].map((m) => m[1]).slice(1),
      }));
    });
  const before = await lastGroup();
  assert.deepEqual(before.map((d) => d.disk), Array.from({ length: 20 }, (_, i) => tops - 20 + i));
  for (const d of before) {
    assert.ok(d.rows.length >= 2, JSON.stringify(d));
    assert.deepEqual(d.rows, d.xml);
  }
  // An edit there works as on a small set: the layer goes from the XML and
  // the table, the group stays rendered, the focus on the disk's controls.
  await el.locator(`.chains .disk[data-disk="${tops - 1}"] tr[data-depth="1"] button[data-act=menu]`).click();
  await el.locator(`.chains .disk[data-disk="${tops - 1}"] tr[data-depth="1"] [role=menuitem][data-act=remove]`).click();
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').domainXml.includes('<domain'));
  const after = await lastGroup();
  assert.equal(after.length, 20);
  assert.deepEqual(after.at(-1).rows, before.at(-1).rows.slice(1));
  assert.deepEqual(after.at(-1).rows, after.at(-1).xml);
  assert.equal(await el.evaluate((el) => el.shadowRoot.activeElement?.closest('.disk')?.dataset.disk), String(tops - 1));

  // The diagnostics, scrolled to their end: the last ones, as the event gave them.
  await el.locator('.diags').evaluate((d) => d.scrollIntoView({ block: 'end' }));
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('.diags li:last-child:not(.pending)'));
  const lastDiags = await el.evaluate((el) => [...el.shadowRoot.querySelectorAll('.diags li:not(.pending)')].slice(-3).map((li) => li.textContent));
  const want = (await page.evaluate(() => window.__diags)).slice(-3).map((d) => `${d.message} (${d.code})`);
  assert.equal(lastDiags.length, 3);
  lastDiags.forEach((text, i) => assert.ok(text.endsWith(want[i]), `${text} / ${want[i]}`));
  assert.deepEqual(events.errors, []);
  // The estimated sizes of what is not rendered yet are set through CSSOM: no CSP report.
  assert.deepEqual(await page.evaluate(() => window.__violations), []);
});

test('a 100 GiB image costs a few KiB: only Blob.slice ranges are read, never the whole file', { skip }, async (t) => {
  const d = subdir('huge');
  const raw = join(d, 'disk.raw');
  execFileSync('truncate', ['-s', '100G', raw]);
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', 'disk.raw', join(d, 'big.qcow2'), '100G');
  const { page } = await openPage(t);
  await page.evaluate(() => {
    window.__sliced = [];
    window.__whole = [];
    const slice = Blob.prototype.slice;
    Blob.prototype.slice = function (a, b, ...rest) {
      window.__sliced.push([this.size, a, b]);
      return slice.call(this, a, b, ...rest);
    };
    for (const m of ['arrayBuffer', 'text', 'stream', 'bytes']) {
      const orig = Blob.prototype[m];
      if (!orig) continue;
      Blob.prototype[m] = function (...args) {
        if (this.size > 1024 * 1024) window.__whole.push([m, this.size]);
        return orig.apply(this, args);
      };
    }
  });
  await dropFiles(page, 'backing-chain-editor', [join(d, 'big.qcow2'), raw]);
  await waitTree(page, 2);
  const { sliced, whole } = await page.evaluate(() => ({ sliced: window.__sliced, whole: window.__whole }));
  assert.deepEqual(whole, []);
  // Dropped files are read in the probe worker (Blob.slice there, not
  // watched here); what came back is the bytes each probe holds.
  assert.deepEqual(sliced, []);
  const forest = await page.locator('backing-chain-editor').evaluate((e) => e.forest);
  const read = Object.fromEntries(forest.images.map((im) => [im.filename, im['bytes-read']]));
  assert.ok(read['big.qcow2'] > 0 && read['disk.raw'] > 0, JSON.stringify(read));
  const total = read['big.qcow2'] + read['disk.raw'];
  assert.ok(total <= 128 * 1024, `read ${total} bytes`);
  const rows = await page.locator('backing-chain-editor li[data-image] > .row').allInnerTexts();
  assert.match(rows.find((r) => r.includes('big.qcow2')), /100 GiB/);
  assert.match(rows.find((r) => r.includes('disk.raw')), /raw/);
  const xml = await xmlText(page);
  assert.equal(xpath(xml, 'string(/disk/backingStore/format/@type)'), 'raw');
  assert.equal(xpath(xml, 'string(/disk/backingStore/source/@file)'), 'disk.raw');
});

test('a backing loop is shown as such; removing an image from the set updates tree and XML', { skip }, async (t) => {
  const d = subdir('loop');
  qemuImg('create', '-q', '-f', 'qcow2', join(d, 'b.qcow2'), '1M');
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'b.qcow2', join(d, 'a.qcow2'));
  qemuImg('rebase', '-u', '-F', 'qcow2', '-b', 'a.qcow2', join(d, 'b.qcow2'));
  const f = makeChain(d);
  const { page } = await openPage(t);
  await dropFiles(page, 'backing-chain-editor', [join(d, 'a.qcow2'), join(d, 'b.qcow2'), f.top, f.mid, f.base]);
  await waitTree(page, 5);
  const ends = await page.locator('backing-chain-editor li[role=treeitem] > .end').allInnerTexts();
  assert.ok(ends.some((e) => /^loop: back to [ab]\.qcow2$/.test(e.trim())), ends.join(' | '));
  const loop = page.locator('backing-chain-editor .diags li[data-code=backing-loop]');
  assert.ok((await loop.count()) >= 1);
  assert.match(await loop.first().innerText(), /error/);
  await page.screenshot({ path: join(ARTIFACTS, 'page-loop.png'), fullPage: true });
  // Remove mid from the set: top's chain is now missing its backing.
  await page.locator('backing-chain-editor li[data-image] > .row >> text=mid.qcow2').click();
  await page.locator('backing-chain-editor button >> text=Remove from the set').click();
  await page.waitForFunction(() => ![...document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('.name')].some((n) => n.textContent === 'mid.qcow2'));
  const tops = (await treeOf(page)).filter((x) => x.level === 1).map((x) => x.name).sort();
  assert.ok(tops.includes('top.qcow2') && tops.includes('base.qcow2'), tops.join(' '));
  assert.ok((await page.locator('backing-chain-editor li[role=treeitem] > .end').allInnerTexts()).some((e) => /missing: mid\.qcow2/.test(e)));
  assert.doesNotMatch(await xmlText(page), /mid\.qcow2'\/>\s*<backingStore/);
});

test('undo / redo: removing an image, the layout, the domain XML (buttons and keyboard)', { skip }, async (t) => {
  const d = subdir('undo');
  const f = makeChain(d);
  const { page } = await openPage(t);
  const el = page.locator('backing-chain-editor');
  const names = async () => (await treeOf(page)).map((x) => `${x.level}:${x.name}`).join(' ');
  await dropFiles(page, 'backing-chain-editor', [f.top, f.mid, f.base]);
  await waitTree(page, 3);
  const full = await names();
  assert.equal(full, '1:top.qcow2 2:mid.qcow2 3:base.qcow2');
  const fullXml = await xmlText(page);
  await el.evaluate((e) => e.removeImage('mid.qcow2'));
  assert.equal(await names(), '1:top.qcow2 1:base.qcow2');
  await page.locator('backing-chain-editor button >> text=Undo').click();
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('li[data-image]').length === 3);
  assert.equal(await names(), full);
  assert.equal(await xmlText(page), fullXml);
  await page.locator('backing-chain-editor button >> text=Redo').click();
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('li[data-image]').length === 2);
  assert.equal(await names(), '1:top.qcow2 1:base.qcow2');
  // Keyboard: Ctrl+Z with the focus in the tree.
  await page.locator('backing-chain-editor li[role=treeitem]').first().focus();
  await page.keyboard.press('Control+z');
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('li[data-image]').length === 3);
  assert.equal(await names(), full);
  // The domain XML is undoable; the layout (a view switch) is not.
  await page.locator('backing-chain-editor label >> text=Flat (proposal)').click();
  assert.equal(await el.evaluate((e) => e.layout), 'flat');
  await el.evaluate((e) => (e.domainXml = "<disk type='file' device='disk'><source file='/srv/top.qcow2'/><target dev='vdc'/></disk>"));
  assert.match(await xmlText(page), /\/srv\/mid\.qcow2/);
  await el.evaluate((e) => e.undo());
  assert.equal(await page.locator('backing-chain-editor textarea').inputValue(), '');
  assert.equal(await el.evaluate((e) => e.layout), 'flat');
  assert.equal(await page.locator('backing-chain-editor .undone').innerText(), 'Undone: the domain XML.');
  await page.locator('backing-chain-editor li[role=treeitem]').first().focus();
  await page.keyboard.press('Control+Shift+Z');
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('textarea').value.includes('/srv/top.qcow2'));
  assert.equal(await el.evaluate((e) => e.layout), 'flat');
  assert.equal(await page.locator('backing-chain-editor .undone').innerText(), 'Redone: the domain XML.');
});

test('dropping domain XML text (dragged from another window) sets the domain XML', { skip }, async (t) => {
  const d = subdir('textdrop');
  const f = makeChain(d);
  const { page } = await openPage(t);
  await dropFiles(page, 'backing-chain-editor', [f.top, f.mid, f.base]);
  await waitTree(page, 3);
  await dropText(page, 'backing-chain-editor', DOMAIN);
  await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('pre.xml').textContent.includes('web1'));
  assert.equal(await page.locator('backing-chain-editor textarea').inputValue(), DOMAIN);
  assert.equal(xpath(await xmlText(page), 'string(//disk/backingStore/backingStore/source/@file)'), '/var/lib/libvirt/images/base.qcow2');
  // Plain prose is refused with a message, the state stays.
  await dropText(page, 'backing-chain-editor', 'hello there');
  assert.match(await page.locator('backing-chain-editor .drop .hint[aria-live]').innerText(), /not XML/);
  assert.equal(await page.locator('backing-chain-editor textarea').inputValue(), DOMAIN);
});

test('the details are a module of their own (issue 18): not fetched to show the tree; answered 404 the details say so in an alert, the tree works on, selecting again after it is served shows them', { skip }, async (t) => {
  const f = makeChain(subdir('details-module'));
  const { page, events } = await openPage(t);
  const fetched = [];
  page.on('request', (r) => new URL(r.url()).pathname.endsWith('/editor-details.js') && fetched.push(r.url()));
  let refuse = true;
  await page.route('**/editor-details.js', (r) => (refuse ? r.fulfill({ status: 404, body: 'nope' }) : r.continue()));
  await dropFiles(page, 'backing-chain-editor', [f.top, f.mid, f.base]);
  await waitTree(page, 3);
  assert.deepEqual(fetched, [], 'showing the tree does not fetch the details');
  await page.locator('backing-chain-editor li[data-image] > .row >> text=mid.qcow2').click();
  const alert = page.locator('backing-chain-editor .details [role=alert]');
  await alert.waitFor();
  assert.match(await alert.innerText(), /^The details of mid\.qcow2 could not be loaded \(.+\); select it again to retry\.$/);
  assert.ok(fetched.length >= 1);
  // The tree and the XML work on: another image is selected (its item), the XML is there.
  await page.locator('backing-chain-editor li[data-image] > .row >> text=top.qcow2').click();
  assert.equal(await page.locator('backing-chain-editor li[data-image][aria-selected=true] > .row .name').innerText(), 'top.qcow2');
  assert.match(await xmlText(page), /mid\.qcow2/);
  // Served again: the next selection shows the details.
  refuse = false;
  await page.locator('backing-chain-editor li[data-image] > .row >> text=mid.qcow2').click();
  await page.locator('backing-chain-editor .details h3', { hasText: 'mid.qcow2' }).waitFor();
  assert.match(await page.locator('backing-chain-editor .details').innerText(), /Backing name \(as written\)\s+base\.qcow2/);
  assert.deepEqual(events.errors, []);
});
