// The probe loop's reads (www/reader.js probeImage): the ranges the core asks
// for in one round are read from the file in one read when they lie within
// 64 KiB (`coalesce`), and the core gets exactly the ranges it asked for —
// the same bytes, the same answer and the same "bytes read" as when each
// range is read on its own (`span: 0`, how the page read before). In Node,
// the page's wasm build; images made by qemu-img (its `info` is the oracle
// for what each image is).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { haveQemuImg, qemuImg, qemuInfo } from '../support/images.mjs';
import { formatImages } from './bench-support.mjs';
import { COALESCE_SPAN, blobReader, probeImage } from '../../www/reader.js';

const PKG = fileURLToPath(new URL('../../www/pkg/', import.meta.url));
const wasm = await import(join(PKG, 'backing_chain.js'));
const skip = haveQemuImg() ? false : 'qemu-img is not installed';

before(() => {
  wasm.initSync({ module: readFileSync(join(PKG, 'backing_chain_bg.wasm')) });
});

function tmp(t) {
  const dir = mkdtempSync(join(tmpdir(), 'bce-reads-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A reader over `bytes` that notes each call; `have` bytes at most (a file shorter than it says). */
function reader(bytes, calls, have = bytes.length) {
  return async (offset, length) => {
    calls.push([offset, length]);
    return bytes.slice(Math.min(offset, have), Math.min(offset + length, have));
  };
}

/** Probe `bytes` through a Session (as the page does: a `Probe` of the session's), noting what the core was given each round (the chunks just read); `span` as a Blob's reader has it unless given. */
async function probe(name, bytes, { size = bytes.length, span = COALESCE_SPAN, have } = {}) {
  const s = new wasm.Session();
  const calls = [];
  const given = [];
  const session = {
    newProbe(sz) {
      const p = s.newProbe(sz);
      return {
        raw: p,
        step(chunks) {
          given.push(chunks.map(([o, b, l]) => [o, Array.from(b), l]));
          return p.step(chunks);
        },
        free: () => p.free(),
      };
    },
    addProbe(n, p) {
      s.addProbe(n, p.raw);
    },
    addUnreadable(n, m) {
      s.addUnreadable(n, m);
    },
  };
  const r = await probeImage(session, name, size, reader(bytes, calls, have), { span });
  const image = s.forest().images[0];
  s.free();
  return { r, calls, given, image };
}

/** An ISO 9660 image of `blocks` 2048-byte blocks: the primary volume descriptor at 32768, then the terminator. */
function isoBytes(blocks) {
  const b = new Uint8Array(blocks * 2048);
  const pvd = 32768;
  b[pvd] = 1;
  b.set(new TextEncoder().encode('CD001\x01'), pvd + 1);
  b.fill(0x20, pvd + 40, pvd + 72);
  b.set(new TextEncoder().encode('TEST'), pvd + 40);
  new DataView(b.buffer).setUint32(pvd + 80, blocks, true);
  new DataView(b.buffer).setUint32(pvd + 84, blocks, false);
  new DataView(b.buffer).setUint16(pvd + 128, 2048, true);
  new DataView(b.buffer).setUint16(pvd + 130, 2048, false);
  b[pvd + 2048] = 255;
  b.set(new TextEncoder().encode('CD001\x01'), pvd + 2048 + 1);
  return b;
}

test('a qcow2 whose 7 bytes at 32768 say ISO: one read covers the header and the descriptor, and multiple-formats is still reported', { skip }, async (t) => {
  const dir = tmp(t);
  // A qcow2 of 512-byte clusters fits in the ISO's 32 KiB system area.
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', join(dir, 'small.qcow2'), '1M');
  const q = readFileSync(join(dir, 'small.qcow2'));
  assert.ok(q.length < 32768, `${q.length}`);
  const poly = isoBytes(64);
  poly.set(q, 0);
  writeFileSync(join(dir, 'poly.iso'), poly);
  // qemu-img sees a qcow2 (its probe looks at byte 0).
  const theirs = qemuInfo(join(dir, 'poly.iso'));
  assert.equal(theirs.format, 'qcow2');

  const one = await probe('poly.iso', poly);
  // One call of the reader: from the header's first byte to the descriptor's last.
  assert.deepEqual(one.calls, [[0, 32768 + 7]]);
  assert.equal(one.r.fileReads, 1);
  assert.equal(one.r.fileBytes, 32768 + 7);
  // The core was given exactly the two ranges it asked for, with the file's bytes.
  const last = one.given[one.given.length - 1];
  assert.deepEqual(last, [
    [0, Array.from(poly.subarray(0, 4096)), 4096],
    [32768, Array.from(poly.subarray(32768, 32768 + 7)), 7],
  ]);
  assert.equal(one.r.bytesRead, 4096 + 7);
  assert.equal(one.r.reads, 2);
  assert.equal(one.image['bytes-read'], 4096 + 7);
  assert.equal(one.image.format, 'qcow2');
  assert.equal(one.image['virtual-size'], theirs['virtual-size']);
  const dg = one.image.diagnostics.find((d) => d.code === 'multiple-formats');
  assert.ok(dg, JSON.stringify(one.image.diagnostics));
  assert.equal(dg.severity, 'error');
  assert.match(dg.message, /CD001/);

  // Each range read on its own: two calls, the same image.
  const two = await probe('poly.iso', poly, { span: 0 });
  assert.deepEqual(two.calls, [[0, 4096], [32768, 7]]);
  assert.deepEqual(two.given, one.given);
  assert.deepEqual(two.image, one.image);

  // The span is the reader's own: a Blob's reader has COALESCE_SPAN, a host's reader none.
  assert.equal(blobReader(new Blob([poly])).span, COALESCE_SPAN);
  const calls = [];
  const s = new wasm.Session();
  await probeImage(s, 'poly.iso', poly.length, reader(poly, calls));
  s.free();
  assert.deepEqual(calls, [[0, 4096], [32768, 7]]);
});

test('files shorter than the coalesced read: the core gets what each range would have got on its own', { skip }, async (t) => {
  const dir = tmp(t);
  qemuImg('create', '-q', '-f', 'qcow2', join(dir, 'a.qcow2'), '1G');
  const q = new Uint8Array(readFileSync(join(dir, 'a.qcow2')));
  const cases = [
    // Longer than an ISO descriptor needs, shorter than the 64 KiB span (a raw file: its tail is read too).
    { name: 'raw-40k.img', bytes: new Uint8Array(40000).fill(7) },
    // Too short for the descriptor: one range (4 KiB), the file shorter still.
    { name: 'tiny.img', bytes: new Uint8Array(1000).fill(1) },
    // Size unknown (-1): the core asks without knowing the length.
    { name: 'unknown.qcow2', bytes: q, size: -1 },
    // The file is shorter than its size says (truncated since): the covering
    // read comes back short, the 7 bytes at 32768 empty.
    { name: 'truncated.qcow2', bytes: q, have: 10_000 },
    // The same, cut inside the 7 bytes.
    { name: 'cut.qcow2', bytes: q, have: 32770 },
  ];
  for (const c of cases) {
    const one = await probe(c.name, c.bytes, { size: c.size, have: c.have });
    const two = await probe(c.name, c.bytes, { size: c.size, have: c.have, span: 0 });
    assert.deepEqual(one.given, two.given, c.name);
    assert.deepEqual(one.image, two.image, c.name);
    assert.deepEqual(one.r.result, two.r.result, c.name);
    assert.equal(one.r.bytesRead, two.r.bytesRead, c.name);
    assert.ok(one.calls.length <= two.calls.length, `${c.name}: ${JSON.stringify(one.calls)}`);
    // No read asks for more than the core's last byte of a round.
    for (const [o, l] of one.calls) assert.ok(two.calls.some(([o2, l2]) => o2 + l2 === o + l), `${c.name}: ${o}+${l}`);
  }
  // The qcow2 cut at 10,000 bytes (its size says more) is still a qcow2 header.
  const cut = await probe('truncated.qcow2', q, { have: 10_000 });
  assert.equal(cut.image.format, 'qcow2');
});

test('every format qemu-img makes: probed with coalesced reads as with one read per range (same answer, same bytes to the core), in fewer reads', { skip }, async (t) => {
  const dir = tmp(t);
  let fewer = 0;
  for (const { label, format, path } of formatImages(dir)) {
    const bytes = new Uint8Array(readFileSync(path));
    const one = await probe(label, bytes);
    const two = await probe(label, bytes, { span: 0 });
    assert.deepEqual(one.given, two.given, label);
    assert.deepEqual(one.image, two.image, label);
    if (one.calls.length < two.calls.length) fewer++;
    const theirs = qemuInfo(path, label === 'vpc-fixed' ? 'vpc' : undefined).format;
    assert.equal(one.image.format ?? `error: ${one.image.error}`, theirs, label);
    t.diagnostic(`${label} (${format}): ${two.calls.length} reads as asked, ${one.calls.length} coalesced; the core used ${one.r.bytesRead} B, ${one.r.fileBytes} B read`);
  }
  assert.ok(fewer > 5, `${fewer} formats took fewer reads`);
});
