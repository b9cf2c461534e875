// The Cockpit example in real Cockpit: Debian's cockpit-ws serves a session
// without login (`--local-session=cockpit-bridge`), the example is installed
// as a Cockpit package as its header says (in the package directory Cockpit's
// bridge reads, XDG_DATA_HOME/cockpit), and Chromium opens it through that
// server — the real cockpit.js, the real bridge running `virsh`, `dd` and
// `stat`, Cockpit's own Content-Security-Policy with the manifest's addition.
// `virsh` talks to a real libvirt daemon (qemu:///system, started here when it
// is not running): a TCG guest with no OS, whose two disks are qemu-img
// chains, is started, and the chains the example shows are the ones libvirt
// itself reports for the running VM (`virsh dumpxml`).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WWW } from '../support/server.mjs';
import { launch, ARTIFACTS } from '../support/browser.mjs';
import { haveQemuImg, haveTool, makeChain, qemuImg, requireOracle } from '../support/images.mjs';

const WS = '/usr/lib/cockpit/cockpit-ws';
const URI = 'qemu:///system';
const isRoot = process.getuid?.() === 0;

function why() {
  if (!haveQemuImg() || !haveTool('virsh') || !haveTool('xmllint')) return 'qemu-img, virsh or xmllint is not installed';
  for (const [f, pkg] of [[WS, 'cockpit-ws'], ['/usr/bin/cockpit-bridge', 'cockpit-bridge'], ['/usr/share/cockpit/base1/cockpit.js.gz', 'cockpit-bridge'], ['/usr/share/cockpit/shell', 'cockpit-system'], ['/usr/bin/qemu-system-x86_64', 'qemu-system-x86']]) {
    if (!existsSync(f)) {
      requireOracle(`${pkg} is not installed`);
      return `${pkg} is not installed`;
    }
  }
  if (!connects() && !isRoot) {
    requireOracle(`cannot connect to ${URI} and only root may start libvirtd`);
    return `cannot connect to ${URI}`;
  }
  return false;
}

function virsh(...args) {
  return execFileSync('timeout', ['60', 'virsh', '-q', '-c', URI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function connects() {
  try {
    virsh('version');
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startLibvirt() {
  if (connects()) return;
  for (const d of ['virtlogd', 'libvirtd']) {
    const bin = ['/usr/sbin', '/sbin', '/usr/bin'].map((p) => join(p, d)).find(existsSync);
    if (!bin) throw new Error(`${d} is not installed (libvirt-daemon)`);
    execFileSync('timeout', ['30', bin, '-d']);
  }
  for (let i = 0; i < 240 && !connects(); i++) await sleep(500);
  if (!connects()) throw new Error(`libvirtd started, but ${URI} does not answer`);
}

async function freePort() {
  const s = createServer();
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok));
  const { port } = /** @type {import('node:net').AddressInfo} */ (s.address());
  await new Promise((ok) => s.close(ok));
  return port;
}

/** The files of a disk's chain as libvirt reports it: `<source file>` of the disk and each `<backingStore>`, top first. */
function libvirtChain(xml, dev) {
  const out = execFileSync('xmllint', ['--xpath', `//devices/disk[target/@dev='${dev}']//source/@file`, '-'], { input: xml, encoding: 'utf8' });
  return [...out.matchAll(/file="([^"]*)"/g)].map((m) => m[1]);
}

const skip = why();
const tag = `bce-cockpit-${process.pid}`;
const vms = [`${tag}-web`, `${tag}-idle`];
let dir;
let ws;
let browser;
let origin;
let images;

before(async () => {
  if (skip) return;
  await startLibvirt();
  dir = mkdtempSync(join(tmpdir(), 'bce-cockpit-real-'));
  images = join(dir, 'images');
  mkdirSync(images);
  // Disk vda: base ← mid ← top; disk vdb: data-base ← data (several chains at once).
  const sys = makeChain(images);
  qemuImg('create', '-q', '-f', 'qcow2', join(images, 'data-base.qcow2'), '64M');
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', 'data-base.qcow2', join(images, 'data.qcow2'));
  qemuImg('create', '-q', '-f', 'qcow2', join(images, 'idle.qcow2'), '64M');
  const disk = (file, dev) => `    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${file}'/>
      <target dev='${dev}' bus='virtio'/>
    </disk>`;
  const domain = (name, disks) => `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
${disks.join('\n')}
  </devices>
</domain>
`;
  writeFileSync(join(dir, 'web.xml'), domain(vms[0], [disk(sys.top, 'vda'), disk(join(images, 'data.qcow2'), 'vdb')]));
  writeFileSync(join(dir, 'idle.xml'), domain(vms[1], [disk(join(images, 'idle.qcow2'), 'vda')]));
  virsh('define', join(dir, 'web.xml'));
  virsh('define', join(dir, 'idle.xml'));
  virsh('start', vms[0]);

  // Installed as the example's header says, where the bridge looks for packages.
  const app = join(dir, 'data', 'cockpit', 'backing-chain');
  mkdirSync(app, { recursive: true });
  for (const name of readdirSync(WWW).filter((n) => n.endsWith('.js'))) cpSync(join(WWW, name), join(app, name));
  cpSync(join(WWW, 'pkg'), join(app, 'pkg'), { recursive: true });
  cpSync(join(WWW, 'cockpit'), app, { recursive: true });

  const port = await freePort();
  ws = spawn(WS, ['--local-session=cockpit-bridge', '--no-tls', '-p', String(port), '-a', '127.0.0.1'], {
    env: { ...process.env, XDG_DATA_HOME: join(dir, 'data') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  ws.stderr.on('data', (d) => (log += d));
  origin = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${origin}/cockpit/@localhost/backing-chain/manifest.json`)).ok) break;
    } catch { /* not listening yet */ }
    await sleep(100);
  }
  if (ws.exitCode !== null) throw new Error(`cockpit-ws exited: ${log}`);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  ws?.kill();
  for (const vm of vms) {
    try { virsh('destroy', vm); } catch { /* not running */ }
    try { virsh('undefine', vm); } catch { /* not defined */ }
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('real Cockpit: the example lists every VM with its disks, and shows the chains libvirt reports for a running VM, read through the bridge with dd', { skip }, async (t) => {
  const live = virsh('dumpxml', vms[0]);
  const want = { vda: libvirtChain(live, 'vda'), vdb: libvirtChain(live, 'vdb') };
  // The oracle itself: libvirt followed both chains of the running VM.
  assert.equal(want.vda.length, 3, live);
  assert.equal(want.vdb.length, 2, live);

  const page = await browser.context.newPage();
  t.after(() => page.close());
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  const responses = [];
  page.on('response', (r) => responses.push(r));
  await page.addInitScript(() => {
    /** @type {any} */ (window).__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => /** @type {any} */ (window).__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(`${origin}/cockpit/@localhost/backing-chain/index.html`);
  // The page really is Cockpit's: its CSP, with the manifest's wasm-unsafe-eval.
  const doc = responses.find((r) => r.url().endsWith('/backing-chain/index.html'));
  const csp = (await doc.allHeaders())['content-security-policy'];
  assert.match(csp, /script-src [^;]*'wasm-unsafe-eval'/);
  assert.match(csp, /default-src 'self'/);
  assert.equal(await page.locator('#connection').inputValue(), URI);

  // Every VM of the connection, with its disks.
  await page.locator(`#domain option[value="${vms[1]}"]`).waitFor({ state: 'attached' });
  const rowText = async (vm) => page.locator(`#vms tr[data-vm="${vm}"]`).innerText();
  assert.match(await rowText(vms[0]), /running/);
  assert.ok((await rowText(vms[0])).includes(`vda (disk, file): ${want.vda[0]}`));
  assert.ok((await rowText(vms[0])).includes(`vdb (disk, file): ${want.vdb[0]}`));
  assert.match(await rowText(vms[1]), /shut off/);
  assert.ok((await rowText(vms[1])).includes(join(images, 'idle.qcow2')));

  await page.locator('#domain').selectOption(vms[0]);
  await page.locator('#pick button[type=submit]').click();
  await page.locator('#status', { hasText: 'image(s) read' }).waitFor({ timeout: 30000 });
  assert.equal(await page.locator('#status').innerText(), '5 image(s) read');

  // The chains the element shows are the ones libvirt reports.
  const forest = await page.locator('backing-chain-editor').evaluate((e) => /** @type {any} */ (e).forest);
  const shown = forest.chains.map((c) => c.layers.map((i) => forest.images[i].filename));
  assert.deepEqual(shown.sort((a, b) => b.length - a.length), [want.vda, want.vdb]);
  for (const c of forest.chains) assert.equal(c.status, 'ok');
  const tree = (await page.locator('backing-chain-editor').locator('[role=tree]').allInnerTexts()).join('\n');
  for (const f of [...want.vda, ...want.vdb]) assert.ok(tree.includes(f), `${f} is in the tree`);
  // The XML it gives back has libvirt's chain for each disk.
  const xml = await page.locator('backing-chain-editor').evaluate((e) => /** @type {any} */ (e).getXml({ layout: 'nested' }));
  assert.deepEqual(libvirtChain(xml, 'vda'), want.vda);
  assert.deepEqual(libvirtChain(xml, 'vdb'), want.vdb);
  assert.ok(xml.includes(`<name>${vms[0]}</name>`));

  await page.screenshot({ path: join(ARTIFACTS, 'cockpit-real.png'), fullPage: true });
  assert.deepEqual(await page.evaluate(() => /** @type {any} */ (window).__csp), []);
  assert.deepEqual(errors, []);
  // The image files are untouched by the reads (qemu-img still sees the same chain).
  const info = JSON.parse(qemuImg('info', '--output=json', '-U', '--backing-chain', want.vda[0]));
  assert.deepEqual(info.map((i) => i.filename), want.vda);
});
