// The metadata walks (MetaWalk, MetaChain), in Node, on the build the page
// loads (the second wasm module, backing_chain_meta: issue 18), against qemu-img map/measure/check run on the
// same images (made here with qemu-img and written with qemu-io).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync, openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { haveQemuImg, haveTool, qemuImg } from '../support/images.mjs';

const PKG = fileURLToPath(new URL('../../www/pkg/', import.meta.url));
const wasm = await import(join(PKG, 'backing_chain_meta.js'));
const skip = haveQemuImg() && haveTool('qemu-io') ? false : 'qemu-img or qemu-io is not installed';

before(() => {
  wasm.initSync({ module: readFileSync(join(PKG, 'backing_chain_meta_bg.wasm')) });
});

function tmp(t) {
  const dir = mkdtempSync(join(tmpdir(), 'bce-meta-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function qemuIo(path, ...cmds) {
  execFileSync('qemu-io', ['-f', 'qcow2', ...cmds.flatMap((c) => ['-c', c]), path], { stdio: 'ignore' });
}

/** Drive a MetaWalk over a file with positioned reads: each step gets the bytes of the ranges the last answer asked for. */
function walkFile(path, options) {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const w = new wasm.MetaWalk(size, options);
    let chunks = [];
    const plans = [];
    for (let round = 0; round < 64; round++) {
      const answer = w.step(chunks);
      if (answer.layer) return { walk: w, layer: answer.layer, plans, size };
      if (answer.plan) plans.push(answer.plan);
      const fresh = [];
      for (const { offset, len } of answer.need) {
        const buf = Buffer.alloc(len);
        const got = readSync(fd, buf, 0, len, offset);
        fresh.push([offset, new Uint8Array(buf.buffer, buf.byteOffset, got), len]);
      }
      // Only the new chunks: the walk keeps the header's earlier reads.
      chunks = fresh;
    }
    throw new Error('too many rounds');
  } finally {
    closeSync(fd);
  }
}

test('MetaWalk and MetaChain give qemu-img map, measure and check figures for a chain of three', { skip }, (t) => {
  const dir = tmp(t);
  const p = (n) => join(dir, n);
  qemuImg('create', '-q', '-f', 'qcow2', p('base.qcow2'), '8M');
  qemuIo(p('base.qcow2'), 'write -P 1 0 2M', 'write -z 2M 256k', 'write -c -P 2 3M 128k');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', p('mid.qcow2'), '8M');
  qemuIo(p('mid.qcow2'), 'write -P 3 1M 512k', 'discard 0 64k');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', p('top.qcow2'), '10M');
  qemuIo(p('top.qcow2'), 'write -P 4 1200k 8k', 'write -z 4M 1M', 'write -P 5 9M 512k');

  const chain = new wasm.MetaChain();
  for (const n of ['top.qcow2', 'mid.qcow2', 'base.qcow2']) {
    const { walk, layer, plans, size } = walkFile(p(n), { check: true });
    chain.push(walk);
    // The plan: exact by the last round, and what was read.
    assert.ok(plans.at(-1).exact, JSON.stringify(plans));
    assert.equal(plans.at(-1)['bytes-total'], layer['bytes-read']);
    assert.ok(layer['bytes-read'] < size, `${n}: read ${layer['bytes-read']} of ${size}`);
    const a = layer.allocation;
    assert.equal(a.data + a.zero + a.compressed + a.unallocated, a['virtual-size']);
    // check: every key qemu-img prints, same value.
    let out;
    try {
      out = execFileSync('qemu-img', ['check', '--output=json', p(n)], { encoding: 'utf8' });
    } catch (e) {
      out = e.stdout;
    }
    const q = JSON.parse(out);
    for (const k of ['check-errors', 'corruptions', 'leaks', 'image-end-offset', 'total-clusters', 'allocated-clusters', 'fragmented-clusters', 'compressed-clusters']) {
      assert.equal(layer.check[k], q[k], `${n} check ${k}`);
    }
  }
  const r = chain.result();
  const qmap = JSON.parse(qemuImg('map', '--output=json', p('top.qcow2')));
  assert.deepEqual(r.map, qmap);
  const qm = JSON.parse(qemuImg('measure', '--output=json', '-O', 'qcow2', p('top.qcow2')));
  assert.deepEqual(r.measure, qm);
  const provided = r.summary.provides.reduce((s, x) => s + x.bytes, 0);
  assert.equal(provided + r.summary['never-written'], 10 * 1024 * 1024);
  assert.equal(r.commit.length, 2);
  chain.free();
});

test('MetaWalk: a raw image is fully allocated by definition; a bad header throws', { skip }, (t) => {
  const dir = tmp(t);
  qemuImg('create', '-q', '-f', 'raw', join(dir, 'r.raw'), '1M');
  const { layer } = walkFile(join(dir, 'r.raw'));
  assert.equal(layer.allocation.data, 1024 * 1024);
  assert.equal(layer.allocation['fully-allocated-by-definition'], true);
  const w = new wasm.MetaWalk(4096);
  const bad = new Uint8Array(4096);
  bad.set([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 9]); // qcow2 magic, version 9
  assert.throws(() => w.step([[0, bad, 4096]]), /version/);
});

test('MetaWalk: a header probed in several rounds (VHDX) needs only the new chunks at each step', { skip }, (t) => {
  const dir = tmp(t);
  const f = join(dir, 'w.vhdx');
  // 1 MiB blocks: the 3 MiB at 0 and the 1 MiB at 32 MiB written fill four.
  qemuImg('create', '-q', '-f', 'vhdx', '-o', 'block_size=1M', f, '64M');
  execFileSync('qemu-io', ['-f', 'vhdx', '-c', 'write -P 1 0 3M', '-c', 'write -P 2 32M 1M', f], { stdio: 'ignore' });
  const { layer, plans } = walkFile(f);
  assert.ok(plans.length > 0);
  assert.equal(layer.allocation['virtual-size'], 64 * 1024 * 1024);
  assert.equal(layer.allocation.data, 4 * 1024 * 1024);
});

test('MetaWalk options: { check } true or false, anything else is a clear error', () => {
  for (const ok of [undefined, null, {}, { check: false }, { check: true }]) new wasm.MetaWalk(4096, ok).free();
  assert.throws(() => new wasm.MetaWalk(4096, { check: 'yes' }), /^Error: bad options: check must be true or false$/);
  assert.throws(() => new wasm.MetaWalk(4096, 5), /^Error: bad options: expected an object/);
});

test('the split (issue 18): the core module the page loads first has no metadata walks, edits or audit but what a page showing data draws (diff, describeXml, seclabels); the on-demand module the walks, edits and a session with audit, without the XML writer or diff', async () => {
  const core = await import(join(PKG, 'backing_chain.js'));
  for (const k of ['MetaWalk', 'MetaChain', 'editXml', 'adoptChain']) assert.equal(core[k], undefined, k);
  for (const k of ['seclabels', 'describeXml']) assert.equal(typeof core[k], 'function', k);
  assert.equal(typeof core.Session, 'function');
  assert.equal(typeof core.Session.prototype.xml, 'function');
  assert.equal(typeof core.Session.prototype.diff, 'function');
  assert.equal(core.Session.prototype.audit, undefined);
  assert.deepEqual(Object.keys(wasm).filter((k) => !['default', 'initSync'].includes(k)).sort(), ['MetaChain', 'MetaWalk', 'Probe', 'Session', 'adoptChain', 'editXml']);
  for (const k of ['audit', 'probe', 'addQemuImgJson', 'setMapping']) assert.equal(typeof wasm.Session.prototype[k], 'function', k);
  for (const k of ['xml', 'xmlImages', 'dataFiles', 'diff']) assert.equal(wasm.Session.prototype[k], undefined, k);
  // Its own instance: the page's core is not initialised by it.
  const exports = wasm.initSync({ module: readFileSync(join(PKG, 'backing_chain_meta_bg.wasm')) });
  assert.ok('metawalk_new' in exports && 'session_audit' in exports && !('session_xml' in exports) && !('session_diff' in exports), Object.keys(exports).join(' '));
});
