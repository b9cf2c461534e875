// The Cockpit example (www/cockpit/), installed the way its header says (the
// element's modules and pkg/ copied next to it), run in Chromium against a
// stand-in for Cockpit's bridge: `cockpit.spawn` runs the real commands the
// example asks for (virsh, dd, stat) on this machine, with libvirt's
// in-process test driver standing in for qemu:///system. No Cockpit here, so
// the bridge is the one part not tested: its `spawn` options are passed
// through as given.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startServer, WWW } from '../support/server.mjs';
import { launch, ARTIFACTS } from '../support/browser.mjs';
import { haveQemuImg, haveTool, makeChain, qemuImg } from '../support/images.mjs';

const skip = haveQemuImg() && haveTool('virsh') ? false : 'qemu-img or virsh is not installed';

// What the page gets as `window.cockpit`: spawn(argv, opts) → Promise of the
// command's output (text, or bytes with `binary`), rejected with its stderr.
const BRIDGE = `
window.__spawned = [];
window.cockpit = {
  spawn(argv, opts = {}) {
    __spawned.push(argv);
    return fetch('/spawn', { method: 'POST', body: JSON.stringify({ argv, opts }) }).then(async (r) => {
      if (!r.ok) throw new Error(await r.text());
      return opts.binary ? new Uint8Array(await r.arrayBuffer()) : r.text();
    });
  },
};
`;

let browser;
let dir;
let server;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bce-cockpit-'));
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('Cockpit example: a VM chosen, its disk chain read on the host through dd; a backing name flagged as untrusted is never read', { skip }, async (t) => {
  // base ← mid ← top, relative backing names, as qemu-img makes them; the
  // base is a VHDX, whose headers lie at 64 KiB and beyond (reads at offset
  // 0 alone would not show a wrong `skip`).
  const images = join(dir, 'images');
  mkdirSync(images);
  qemuImg('create', '-q', '-f', 'vhdx', join(images, 'base.vhdx'), '1G');
  const f = makeChain(images, { base: 'base.vhdx', baseFormat: 'vhdx' });
  // vm2's disk names a backing file outside the image folder (it exists: the
  // example would read it if it followed the name).
  mkdirSync(join(dir, 'outside'));
  const secret = join(dir, 'outside', 'secret.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', secret, '1G');
  const evil = join(images, 'evil.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', '../outside/secret.qcow2', evil);
  const node = join(dir, 'node.xml');
  writeFileSync(node, `<node>
  <domain type='test'>
    <name>vm1</name>
    <memory>1048576</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'>
        <driver name='qemu' type='qcow2'/>
        <source file='${f.top}'/>
        <target dev='vda' bus='virtio'/>
      </disk>
    </devices>
  </domain>
  <domain type='test'>
    <name>vm2</name>
    <memory>1048576</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'>
        <driver name='qemu' type='qcow2'/>
        <source file='${evil}'/>
        <target dev='vda' bus='virtio'/>
      </disk>
    </devices>
  </domain>
</node>
`);
  // Installed as the example's header says: www/*.js, www/pkg, www/cockpit/*.
  const root = join(dir, 'site');
  const app = join(root, 'backing-chain');
  mkdirSync(app, { recursive: true });
  for (const name of readdirSync(WWW).filter((n) => n.endsWith('.js'))) cpSync(join(WWW, name), join(app, name));
  cpSync(join(WWW, 'pkg'), join(app, 'pkg'), { recursive: true });
  cpSync(join(WWW, 'cockpit'), app, { recursive: true });
  mkdirSync(join(root, 'base1'));
  writeFileSync(join(root, 'base1', 'cockpit.js'), BRIDGE);
  // Cockpit's own policy with the manifest's script-src.
  const manifest = JSON.parse(readFileSync(join(WWW, 'cockpit', 'manifest.json'), 'utf8'));
  const csp = `default-src 'self'; connect-src 'self'; object-src 'none'; ${manifest['content-security-policy']}`;

  const allowed = new Set(['virsh', 'dd', 'stat']);
  const handle = async (req, res, url) => {
    if (url.pathname === '/favicon.ico') {
      res.writeHead(204).end(); // Cockpit's shell has its own
      return true;
    }
    if (url.pathname !== '/spawn') return false;
    let body = '';
    for await (const chunk of req) body += chunk;
    const { argv } = JSON.parse(body);
    if (!allowed.has(argv[0])) {
      res.writeHead(403).end(`not allowed: ${argv[0]}`);
      return true;
    }
    const args = argv.slice(1).map((a) => (a === 'qemu:///system' ? `test://${node}` : a));
    execFile(argv[0], args, { encoding: 'buffer' }, (err, stdout, stderr) => {
      if (err) res.writeHead(500).end(stderr.length ? stderr : String(err));
      else res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(stdout);
    });
    return true;
  };
  server = await startServer({ root, handle, headers: { 'content-security-policy': csp } });
  const origin = `http://127.0.0.1:${server.address().port}`;

  const page = await browser.context.newPage();
  t.after(() => page.close());
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(`${origin}/backing-chain/index.html`);
  await page.locator('#domain option[value=vm1]').waitFor({ state: 'attached' });
  await page.locator('#pick button[type=submit]').click();
  await page.locator('#status', { hasText: 'image(s) read' }).waitFor();
  assert.equal(await page.locator('#status').innerText(), '3 image(s) read');

  // The chain as the images say, nested under the VM's disk.
  const tree = await page.locator('backing-chain-editor').evaluate((el) =>
    [...el.shadowRoot.querySelectorAll('li[role=treeitem][data-image]')].map((li) => `${li.getAttribute('aria-level')}:${li.querySelector('.name').textContent}`),
  );
  assert.deepEqual(tree, [`1:${f.top}`, `2:${f.mid}`, `3:${f.base}`]);
  const xml = await page.locator('backing-chain-editor').evaluate((el) => el.getXml({ layout: 'nested' }));
  assert.match(xml, /<name>vm1<\/name>/);
  const esc = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  assert.match(xml, new RegExp(`<backingStore type='file' index='2'>\\s*<format type='qcow2'/>\\s*<source file='${esc(f.mid)}'/>\\s*<backingStore type='file' index='3'>\\s*<format type='vhdx'/>\\s*<source file='${esc(f.base)}'/>\\s*<backingStore/>`));

  // What ran on the "host": virsh on the connection the example names, and
  // dd reads of header ranges only — a few KiB of each 1 GiB image.
  const spawned = await page.evaluate(() => window.__spawned);
  assert.ok(spawned.some((a) => a.join(' ') === 'virsh -c qemu:///system list --all --name'));
  assert.ok(spawned.some((a) => a.join(' ') === 'virsh -c qemu:///system dumpxml --inactive vm1'));
  const reads = spawned.filter((a) => a[0] === 'dd');
  for (const p of [f.top, f.mid, f.base]) assert.ok(reads.some((a) => a[1] === `if=${p}`), `${p} read`);
  let bytes = 0;
  for (const a of reads) bytes += Number(a.find((x) => x.startsWith('count=')).slice(6));
  assert.ok(bytes <= 3 * 16384, `${bytes} bytes asked of the host`);
  await page.screenshot({ path: join(ARTIFACTS, 'cockpit-example.png'), fullPage: true });

  // PatternFly 5's look through the element's custom properties (the theme
  // block; no PatternFly loaded here, so its default values).
  const el = page.locator('backing-chain-editor');
  assert.equal(await el.evaluate((e) => getComputedStyle(e).getPropertyValue('--bce-accent').trim()), '#06c');
  assert.equal(await el.locator('button.primary').first().evaluate((b) => getComputedStyle(b).backgroundColor), 'rgb(0, 102, 204)');
  assert.match(await el.evaluate((e) => getComputedStyle(e.shadowRoot.querySelector('.root')).fontFamily), /^RedHatText/);
  // Confirmation before a destructive edit: Cancel keeps the layer, Remove removes it.
  const before = await el.evaluate((e) => e.getXml());
  const removeLayer = async () => {
    await el.locator('.chains tr[data-depth="1"] button[data-act=menu]').click();
    await el.locator('.chains tr[data-depth="1"] [role=menuitem][data-act=remove]').click();
    await page.locator('dialog#confirm[open]').waitFor();
    assert.match(await page.locator('#confirm-title').innerText(), /Remove this layer/);
  };
  await removeLayer();
  await page.locator('dialog#confirm button >> text=Cancel').click();
  assert.equal(await el.evaluate((e) => e.getXml()), before);
  await removeLayer();
  await page.locator('dialog#confirm button >> text=Remove').click();
  await page.waitForFunction((b) => document.querySelector('backing-chain-editor').getXml() !== b, before);
  assert.ok(!(await el.evaluate((e) => e.getXml({ layout: 'nested' }))).includes(f.mid.replace(/.*\//, '')), 'the layer is gone');

  // vm2: the example's element is untrusted; the escaping backing name is
  // flagged and its file is never read on the host.
  // dd reads of `p`, however the path is spelt ('images/../outside/…' is the same file).
  const readsOf = async (p) => (await page.evaluate(() => window.__spawned)).filter((a) => a[0] === 'dd' && resolve(a[1].slice(3)) === p).length;
  const showVm2 = async () => {
    await page.locator('#status').evaluate((s) => (s.textContent = ''));
    await page.locator('#domain').selectOption('vm2');
    await page.locator('#pick button[type=submit]').click();
    await page.locator('#status', { hasText: 'image(s) read' }).waitFor();
    return page.locator('#status').innerText();
  };
  assert.equal(await showVm2(), '1 image(s) read');
  // Alerts at the top of the page say what is wrong (text, from the element's diagnostics event).
  const alert = page.locator('#alerts .alert.warning');
  assert.match(await alert.locator('.title').innerText(), /^\d+ warnings? in the disk chains$/);
  assert.ok((await page.locator('#alerts').boundingBox()).y < (await page.locator('backing-chain-editor').boundingBox()).y);
  assert.ok((await readsOf(evil)) > 0);
  assert.equal(await readsOf(secret), 0);
  assert.match((await page.locator('backing-chain-editor .diags li[data-code=untrusted-backing-name]').allInnerTexts()).join('\n'), /\.\.\/outside\/secret\.qcow2/);
  // The control: without `untrusted` the same example follows the name and reads the file.
  await page.locator('backing-chain-editor').evaluate((e) => (e.untrusted = false));
  assert.equal(await showVm2(), '2 image(s) read');
  assert.ok((await readsOf(secret)) > 0);
  assert.deepEqual(await page.evaluate(() => window.__csp), []);
  assert.deepEqual(errors, []);
});
