// The facade's editing and input additions, in Node on the web build:
// addQemuImgJson, setMapping, diff, describeXml, editXml, adoptChain, seclabels,
// parseHosts.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { haveQemuImg, makeChain, qemuImg, probeFile } from '../support/images.mjs';

const PKG = fileURLToPath(new URL('../../www/pkg/', import.meta.url));
const wasm = await import(join(PKG, 'backing_chain.js'));
// The on-demand module: the edits (editXml, adoptChain), and a session with audit (issue 18).
const meta = await import(join(PKG, 'backing_chain_meta.js'));
const skip = haveQemuImg() ? false : 'qemu-img is not installed';

before(() => {
  wasm.initSync({ module: readFileSync(join(PKG, 'backing_chain_bg.wasm')) });
  meta.initSync({ module: readFileSync(join(PKG, 'backing_chain_meta_bg.wasm')) });
});

function tmp(t) {
  const dir = mkdtempSync(join(tmpdir(), 'bce-api-edit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function xpath(xml, expr) {
  return execFileSync('xmllint', ['--xpath', expr, '-'], { input: xml, encoding: 'utf8' }).trim();
}

test('addQemuImgJson: the images qemu-img lists make the same chain as probing the files', { skip }, (t) => {
  const d = tmp(t);
  const f = makeChain(d);
  const json = qemuImg('info', '--backing-chain', '--output=json', '-U', f.top);
  const s = new wasm.Session();
  const names = s.addQemuImgJson(json);
  assert.deepEqual(names, JSON.parse(json).map((e) => e.filename));
  const forest = s.forest();
  assert.equal(forest.chains.length, 1);
  assert.deepEqual(forest.chains[0].layers.map((i) => forest.images[i].filename), names);
  assert.equal(forest.chains[0].status, 'ok');
  // The same again replaces (no duplicates).
  s.addQemuImgJson(json);
  assert.equal(s.length, 3);
  // Malformed: an Error with a position.
  assert.throws(() => s.addQemuImgJson('[{"filename": 1'), (e) => e instanceof Error && typeof e.position === 'number' && /qemu-img JSON/.test(e.message));
  assert.throws(() => s.addQemuImgJson('[{"format": "qcow2"}]'), /no "filename"/);
});

test('setMapping: the user-given backing wins; clearing it goes back to the header', { skip }, (t) => {
  const d = tmp(t);
  const f = makeChain(d);
  qemuImg('create', '-q', '-f', 'qcow2', join(d, 'other.qcow2'), '1G');
  const s = new wasm.Session();
  for (const [n, p] of [['top.qcow2', f.top], ['mid.qcow2', f.mid], ['base.qcow2', f.base], ['other.qcow2', join(d, 'other.qcow2')]]) probeFile(s, n, p);
  const chainOf = (forest) => forest.chains.find((c) => forest.images[c.top].filename === 'top.qcow2').layers.map((i) => forest.images[i].filename);
  assert.deepEqual(chainOf(s.forest()), ['top.qcow2', 'mid.qcow2', 'base.qcow2']);
  s.setMapping([['mid.qcow2', 'other.qcow2']]);
  assert.deepEqual(chainOf(s.forest()), ['top.qcow2', 'mid.qcow2', 'other.qcow2']);
  s.setMapping([]);
  assert.deepEqual(chainOf(s.forest()), ['top.qcow2', 'mid.qcow2', 'base.qcow2']);
  assert.throws(() => s.setMapping('nope'), /mapping/);
});

const DOM = `<domain type='kvm'>
  <name>d</name>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/img/top.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
`;

test('editXml, adoptChain, describeXml, diff, seclabels over a populated domain', { skip }, (t) => {
  const d = tmp(t);
  const f = makeChain(d);
  const s = new wasm.Session();
  for (const [n, p] of [['top.qcow2', f.top], ['mid.qcow2', f.mid], ['base.qcow2', f.base]]) probeFile(s, n, p);
  const populated = s.xml(DOM, { layout: 'nested' }).xml;
  assert.equal(xpath(populated, 'string(//disk/backingStore/source/@file)'), '/img/mid.qcow2');
  // adoptChain writes the populated chain into the bare domain: the same document.
  const adopted = meta.adoptChain(DOM, populated, 0);
  assert.equal(adopted, populated);
  assert.equal(wasm.describeXml(DOM)[0].layers.length, 0);
  assert.equal(wasm.describeXml(adopted)[0].layers.length, 3); // mid, base, terminator
  // An edit: the base becomes raw at another path; diff marks it.
  const edited = meta.editXml(adopted, { op: 'set-layer', disk: 0, depth: 2, layer: { type: 'file', path: '/img/other.raw', format: 'raw' } });
  assert.equal(xpath(edited, 'string(//disk/backingStore/backingStore/source/@file)'), '/img/other.raw');
  assert.equal(xpath(edited, 'string(//disk/backingStore/backingStore/format/@type)'), 'raw');
  const diff = s.diff(edited, { layout: 'nested' });
  assert.equal(diff.length, 1);
  assert.deepEqual(diff[0].rows.map((r) => r.differs), [[], ['place', 'format']]);
  assert.equal(diff[0].rows[1].images.place, '/img/base.qcow2');
  // Validate mode agrees (the core's diagnostics).
  const v = s.xml(edited, { mode: 'validate' });
  assert.equal(v.mismatch, true);
  assert.equal(v.diagnostics.filter((x) => x.code === 'chain-mismatch').length, 2);
  // Seclabels: set, listed.
  const labelled = meta.editXml(edited, { op: 'set-seclabel', disk: 0, depth: 1, seclabel: { model: 'dac', relabel: false } });
  assert.deepEqual(wasm.seclabels(labelled)[0][1], [{ model: 'dac', relabel: 'no', label: null, others: 0 }]);
  // Refused edits throw Errors with a message.
  assert.throws(() => meta.editXml(edited, { op: 'remove-layer', disk: 0, depth: 9 }), /no backing layer 9/);
  assert.throws(() => meta.editXml(edited, { op: 'frobnicate', disk: 0 }), /bad edit/);
  assert.throws(() => meta.editXml('<domain', { op: 'remove-layer', disk: 0, depth: 1 }), (e) => typeof e.position === 'number');
});

test('parseHosts: host, host:port, [IPv6]:port and unix sockets, as the layer form gives them', () => {
  // The shape editXml takes for a layer's hosts (xml::edit::HostSpec).
  const tcp = (name, port) => ({ name, port, transport: null, socket: null });
  assert.deepEqual(wasm.parseHosts('mon1.example:6789, 192.0.2.7:6790  mon3'), [tcp('mon1.example', 6789), tcp('192.0.2.7', 6790), tcp('mon3', null)]);
  // IPv6: in brackets, with or without a port; the name comes back without them.
  assert.deepEqual(wasm.parseHosts('[2001:db8::7]:10809,[fe80::1]'), [tcp('2001:db8::7', 10809), tcp('fe80::1', null)]);
  assert.deepEqual(wasm.parseHosts('/run/nbd.sock'), [{ name: null, port: null, transport: 'unix', socket: '/run/nbd.sock' }]);
  assert.deepEqual(wasm.parseHosts(' , '), []);
  // Port 0 means "not given" (as in backing names).
  assert.deepEqual(wasm.parseHosts('h:0'), [tcp('h', null)]);
  // What is not a host throws, with the core's words.
  assert.throws(() => wasm.parseHosts('2001:db8::7'), /brackets/);
  assert.throws(() => wasm.parseHosts('h:99999'), /out of range/);
  assert.throws(() => wasm.parseHosts('h:http'), /not a port/);
  assert.throws(() => wasm.parseHosts('[2001:db8::7'), /unclosed/);
  assert.throws(() => wasm.parseHosts('user@h'), /not host, host:port/);
  assert.throws(() => wasm.parseHosts('h:1/x'), /not host, host:port/);
});
