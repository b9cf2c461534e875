// The facade's arguments read from plain JS objects (issue 18: editXml's
// edit, the XML options and setMapping's pairs are read by hand, without
// serde-wasm-bindgen): every field reaches the document (read back with
// xmllint), absent fields take their defaults, and a wrong one is an Error
// that names it. In Node on the web build.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { haveQemuImg, haveTool, makeChain, probeFile, qemuImg } from '../support/images.mjs';

const PKG = fileURLToPath(new URL('../../www/pkg/', import.meta.url));
const wasm = await import(join(PKG, 'backing_chain.js'));
// The on-demand module: the edits, and a session with audit (issue 18).
const meta = await import(join(PKG, 'backing_chain_meta.js'));
const skip = haveTool('xmllint') ? false : 'xmllint is not installed';
const skipQemu = haveQemuImg() ? false : 'qemu-img is not installed';

before(() => {
  wasm.initSync({ module: readFileSync(join(PKG, 'backing_chain_bg.wasm')) });
  meta.initSync({ module: readFileSync(join(PKG, 'backing_chain_meta_bg.wasm')) });
});

/** @param {string} xml @param {string} expr an XPath expression giving a string or number */
function xpath(xml, expr) {
  return execFileSync('xmllint', ['--xpath', expr, '-'], { input: xml, encoding: 'utf8' }).trim();
}

const DOM = `<domain type='kvm'>
  <name>d</name>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/img/top.qcow2'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/img/base.qcow2'/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
`;
const B = '/domain/devices/disk/backingStore';

test('editXml: every field of a layer, a seclabel and each operation reaches the document', { skip }, () => {
  const net = meta.editXml(DOM, {
    op: 'set-layer',
    disk: 0,
    depth: 1,
    layer: { type: 'network', protocol: 'nbd', name: 'exp', format: 'raw', hosts: [{ name: 'h1', port: 10809 }, { transport: 'unix', socket: '/run/n.sock' }] },
  });
  assert.equal(xpath(net, `string(${B}/@type)`), 'network');
  assert.equal(xpath(net, `string(${B}/format/@type)`), 'raw');
  assert.equal(xpath(net, `concat(${B}/source/@protocol, ' ', ${B}/source/@name)`), 'nbd exp');
  assert.equal(xpath(net, `concat(${B}/source/host[1]/@name, ':', ${B}/source/host[1]/@port)`), 'h1:10809');
  assert.equal(xpath(net, `concat(${B}/source/host[2]/@transport, ' ', ${B}/source/host[2]/@socket)`), 'unix /run/n.sock');

  const nvme = meta.editXml(DOM, { op: 'set-layer', disk: 0, depth: 1, layer: { type: 'nvme', pci: '0000:01:00.0', namespace: 2, managed: true } });
  assert.equal(xpath(nvme, `concat(${B}/source/@type, ' ', ${B}/source/@managed, ' ', ${B}/source/@namespace)`), 'pci yes 2');
  assert.equal(xpath(nvme, `string(${B}/source/address/@bus)`), '0x01');
  // `format` absent: left as it is.
  assert.equal(xpath(nvme, `string(${B}/format/@type)`), 'qcow2');

  const vol = meta.editXml(DOM, { op: 'insert-layer', disk: 0, depth: 1, layer: { type: 'volume', pool: 'p', volume: 'v', mode: 'host', format: 'qcow2' } });
  assert.equal(xpath(vol, `concat(${B}/@type, ' ', ${B}/source/@pool, ' ', ${B}/source/@volume, ' ', ${B}/source/@mode)`), 'volume p v host');
  assert.equal(xpath(vol, `string(${B}/backingStore/source/@file)`), '/img/base.qcow2');

  const file = meta.editXml(DOM, { op: 'set-layer', disk: 0, depth: 1, layer: { type: 'file', path: '/img/other.raw', format: 'raw', hosts: [] } });
  assert.equal(xpath(file, `concat(${B}/source/@file, ' ', ${B}/format/@type)`), '/img/other.raw raw');

  const label = 'system_u:object_r:svirt_image_t:s0';
  const sec = meta.editXml(DOM, { op: 'set-seclabel', disk: 0, depth: 1, seclabel: { model: 'selinux', relabel: true, label } });
  assert.equal(xpath(sec, `concat(${B}/source/seclabel/@model, ' ', ${B}/source/seclabel/@relabel, ' ', ${B}/source/seclabel/label)`), `selinux yes ${label}`);
  const unsec = meta.editXml(sec, { op: 'remove-seclabel', disk: 0, depth: 1, model: 'selinux' });
  assert.equal(xpath(unsec, `count(${B}/source/seclabel)`), '0');

  const term = meta.editXml(DOM, { op: 'set-terminator', disk: 0, on: true });
  assert.equal(xpath(term, `count(${B}/backingStore[not(node())])`), '1');
  const removed = meta.editXml(DOM, { op: 'remove-layer', disk: 0, depth: 1 });
  assert.equal(xpath(removed, `count(${B})`), '0');
});

test('editXml: a wrong edit is an Error naming the field, never a panic', () => {
  const bad = (op, re) => assert.throws(() => meta.editXml(DOM, op), (e) => e instanceof Error && re.test(e.message), JSON.stringify(op));
  bad({ op: 'set-layer', disk: 0, depth: 1 }, /^bad edit: missing field `layer`$/);
  bad({ disk: 0 }, /^bad edit: missing field `op`$/);
  bad({ op: 'frobnicate', disk: 0 }, /^bad edit: unknown variant `frobnicate`, expected one of `set-layer`/);
  bad({ op: 'set-layer', disk: -1, depth: 1, layer: {} }, /^bad edit: `disk` must be a whole number from 0 to \d+$/);
  bad({ op: 'set-layer', disk: 0, depth: 1.5, layer: {} }, /^bad edit: `depth` must be a whole number/);
  bad({ op: 'set-layer', disk: 0, depth: 1, layer: { hosts: [{ name: 'h' }, { port: 70000 }] } }, /^bad edit: `layer\.hosts\[1\]\.port` must be a whole number from 0 to 65535$/);
  bad({ op: 'set-layer', disk: 0, depth: 1, layer: { type: 'nvme', namespace: 2 ** 32 } }, /^bad edit: `layer\.namespace` must be a whole number from 0 to 4294967295$/);
  bad({ op: 'set-layer', disk: 0, depth: 1, layer: { type: 5 } }, /^bad edit: `layer\.type` must be a string$/);
  bad({ op: 'set-layer', disk: 0, depth: 1, layer: { type: 'file', hosts: 'h' } }, /^bad edit: `layer\.hosts` must be an array$/);
  bad({ op: 'set-layer', disk: 0, depth: 1, layer: [] }, /^bad edit: `layer` must be an object$/);
  bad({ op: 'set-terminator', disk: 0, on: 'yes' }, /^bad edit: `on` must be true or false$/);
  bad({ op: 'set-seclabel', disk: 0, depth: 1, seclabel: { model: 'dac', relabel: 'no' } }, /^bad edit: `seclabel\.relabel` must be true or false$/);
  bad(null, /^bad edit: expected an object$/);
  bad('set-layer', /^bad edit: expected an object$/);
});

test('XML options: each one applies; a wrong one is an Error naming it', { skip: skip || skipQemu }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bce-api-args-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = makeChain(dir);
  const s = new wasm.Session();
  try {
    for (const [n, p] of [['top.qcow2', f.top], ['mid.qcow2', f.mid], ['base.qcow2', f.base]]) probeFile(s, n, p);
    // A disk without <backingStore>: populate writes the chain the images give.
    const dom = DOM.replace(/<backingStore[\s\S]*<\/backingStore>\n\s*/, '');
    const nested = s.xml(dom, { layout: 'nested' }).xml;
    assert.equal(xpath(nested, `count(${B}/backingStore)`), '1');
    assert.equal(xpath(nested, `string(${B}/source/@file)`), '/img/mid.qcow2');
    assert.equal(xpath(s.xml(dom, undefined).xml, `count(${B}[@index])`), '1');
    assert.equal(xpath(s.xml(dom, { 'no-index': true }).xml, `count(${B}[@index])`), '0');
    assert.equal(xpath(s.xml(dom, { 'base-dir': '/other' }).xml, `string(${B}/source/@file)`), '/other/mid.qcow2');
    // Flat: the layers as siblings, each naming its parent (and the terminator).
    const flat = s.xml(dom, { layout: 'flat' }).xml;
    assert.equal(xpath(flat, `count(${B}/backingStore)`), '0');
    assert.equal(xpath(flat, `count(${B}/alias)`), '3');
    assert.equal(xpath(nested, `count(${B}/alias)`), '0');
    // Validate mode reports the stated chain that differs; replace writes the images'.
    assert.equal(s.xml(DOM, { mode: 'validate' }).mismatch, true);
    assert.equal(xpath(s.xml(DOM, { mode: 'validate', replace: true }).xml, `string(${B}/source/@file)`), '/img/mid.qcow2');
    // Without a domain: several disks come bare, or in a <domain> on request.
    qemuImg('create', '-q', '-f', 'qcow2', join(dir, 'solo.qcow2'), '1G');
    probeFile(s, 'solo.qcow2', join(dir, 'solo.qcow2'));
    assert.match(s.xml(null, {}).xml, /^<disk /);
    assert.equal(xpath(s.xml(null, { wrap: true }).xml, 'count(/domain/devices/disk)'), '2');
    const bad = (o, re) => assert.throws(() => s.xml(dom, o), (e) => e instanceof Error && re.test(e.message), JSON.stringify(o));
    bad({ layout: 'sideways' }, /^bad options: `layout` is `sideways`, expected one of `nested`, `flat`$/);
    bad({ mode: 'x' }, /^bad options: `mode` is `x`, expected one of `populate`, `validate`$/);
    bad({ 'no-index': 1 }, /^bad options: `no-index` must be true or false$/);
    bad({ 'base-dir': 3 }, /^bad options: `base-dir` must be a string$/);
    bad(7, /^bad options: expected an object$/);
    assert.throws(() => s.diff(DOM, { replace: 'yes' }), /^Error: bad options: `replace` must be true or false$/);
  } finally {
    s.free();
  }
});

test('setMapping: an array or any iterable of [image, backing] pairs; anything else is an Error', () => {
  const s = new wasm.Session();
  try {
    s.setMapping([['a', 'b']]);
    s.setMapping(new Map([['a', 'b']]));
    s.setMapping(null);
    for (const [m, re] of [
      ['nope', /^mapping: expected an array of \[image, backing image\] pairs$/],
      [5, /^mapping: expected an array/],
      [[['a']], /^mapping: \[0\] must be a pair of strings/],
      [[['a', 'b'], ['a', 1]], /^mapping: \[1\] must be a pair of strings/],
    ]) {
      assert.throws(() => s.setMapping(m), (e) => e instanceof Error && re.test(e.message), String(m));
    }
  } finally {
    s.free();
  }
});
