// How dropped and chosen files are named (www/reader.js, issue 13): one folder
// alone is the root its files are named from; several items keep their names,
// as from the folder they were dragged from. Paths here are the ones a drop
// or a folder picker gives (the dropped item's name first).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rebase, filesFromList } from '../../www/reader.js';

const names = (list) => list.map((e) => [e.path, e.from ?? null]);
const drop = (...paths) => paths.map((path) => ({ file: null, path }));

test('one dropped folder: named from inside it, subfolders kept', () => {
  assert.deepEqual(names(rebase(drop('imgs/top.qcow2', 'imgs/base.qcow2', 'imgs/sub/a.qcow2'))), [
    ['top.qcow2', "the dropped folder 'imgs'"],
    ['base.qcow2', "the dropped folder 'imgs'"],
    ['sub/a.qcow2', "the dropped folder 'imgs'"],
  ]);
});

test('a domain XML or qemu-img JSON dropped with one folder does not count as a second item', () => {
  assert.deepEqual(names(rebase(drop('web1.xml', 'imgs/top.qcow2', 'chain.json'))), [
    ['web1.xml', null],
    ['top.qcow2', "the dropped folder 'imgs'"],
    ['chain.json', null],
  ]);
});

test('several folders, or folders and image files: every name kept', () => {
  assert.deepEqual(names(rebase(drop('vm1/disk.qcow2', 'vm2/disk.qcow2', 'alone.qcow2'))), [
    ['vm1/disk.qcow2', 'the folder the items were dropped from'],
    ['vm2/disk.qcow2', 'the folder the items were dropped from'],
    ['alone.qcow2', null],
  ]);
  assert.deepEqual(names(rebase(drop('imgs/top.qcow2', 'other.qcow2'))).map((x) => x[0]), ['imgs/top.qcow2', 'other.qcow2']);
});

test('files alone are their names; nothing dropped is nothing', () => {
  assert.deepEqual(names(rebase(drop('top.qcow2', 'base.qcow2'))), [['top.qcow2', null], ['base.qcow2', null]]);
  assert.deepEqual(rebase([]), []);
});

test('the folder picker (webkitRelativePath) is one folder; the file picker gives names', () => {
  const picked = [{ name: 'top.qcow2', webkitRelativePath: 'imgs/top.qcow2' }, { name: 'a.qcow2', webkitRelativePath: 'imgs/sub/a.qcow2' }];
  assert.deepEqual(filesFromList(picked).map((e) => e.path), ['top.qcow2', 'sub/a.qcow2']);
  assert.equal(filesFromList(picked)[0].file, picked[0]);
  assert.deepEqual(filesFromList([{ name: 'x.qcow2', webkitRelativePath: '' }]).map((e) => [e.path, e.from]), [['x.qcow2', undefined]]);
});

// ---- coalesce: the reads that cover one probe round's ranges ------------

import { coalesce, COALESCE_SPAN } from '../../www/reader.js';

test("coalesce: a qcow2's first round (4 KiB header, 7 bytes at 32768) is one read covering both", () => {
  assert.deepEqual(coalesce([{ offset: 0, len: 4096 }, { offset: 32768, len: 7 }]), [{ offset: 0, len: 32775, parts: [0, 1] }]);
  // As the core asks (span 0): one read per range.
  assert.deepEqual(coalesce([{ offset: 0, len: 4096 }, { offset: 32768, len: 7 }], 0), [
    { offset: 0, len: 4096, parts: [0] },
    { offset: 32768, len: 7, parts: [1] },
  ]);
});

test('coalesce: ranges further apart than the span are read on their own; a read never ends past the last range', () => {
  const need = [{ offset: 1 << 30, len: 512 }, { offset: 0, len: 4096 }, { offset: 65536, len: 100 }, { offset: 32768, len: 7 }];
  const reads = coalesce(need);
  assert.equal(COALESCE_SPAN, 64 * 1024);
  // In offset order; the parts name the ranges by their place in `need`.
  assert.deepEqual(reads, [
    { offset: 0, len: 32775, parts: [1, 3] },
    { offset: 65536, len: 100, parts: [2] },
    { offset: 1 << 30, len: 512, parts: [0] },
  ]);
  // Every range in exactly one read, inside it.
  const seen = reads.flatMap((r) => r.parts).sort();
  assert.deepEqual(seen, [0, 1, 2, 3]);
  for (const r of reads) for (const p of r.parts) assert.ok(need[p].offset >= r.offset && need[p].offset + need[p].len <= r.offset + r.len);
});

test('coalesce: a range inside a larger read joins it whatever its size; a big read is never grown past the span', () => {
  assert.deepEqual(coalesce([{ offset: 0, len: 1 << 20 }, { offset: 4096, len: 16 }, { offset: 0, len: 7 }]), [{ offset: 0, len: 1 << 20, parts: [0, 2, 1] }]);
  assert.deepEqual(coalesce([{ offset: 0, len: 1 << 20 }, { offset: (1 << 20) + 1, len: 16 }]), [
    { offset: 0, len: 1 << 20, parts: [0] },
    { offset: (1 << 20) + 1, len: 16, parts: [1] },
  ]);
  assert.deepEqual(coalesce([]), []);
});

// ---- batchedBlobReads: the reads of many files made together ------------

import { batchedBlobReads } from '../../www/reader.js';

/** Count `new Blob(...)` calls made while `fn` runs (a composite read makes one). */
async function countingBlobs(fn) {
  const Real = globalThis.Blob;
  let made = 0;
  globalThis.Blob = class extends Real {
    constructor(...a) {
      super(...a);
      made++;
    }
  };
  try {
    return { got: await fn(), made };
  } finally {
    globalThis.Blob = Real;
  }
}

const bytesOf = (n, seed) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255);

test('batchedBlobReads: reads asked for in one task are one read of a Blob of their slices; each reader gets its own bytes', async () => {
  const files = Array.from({ length: 40 }, (_, k) => new Blob([bytesOf(5000 + k * 100, k)]));
  const read = batchedBlobReads();
  const { got, made } = await countingBlobs(() => Promise.all(files.map((f, k) => read(f)(k * 10, 4096))));
  files.forEach((f, k) => {
    const want = bytesOf(5000 + k * 100, k).slice(k * 10, k * 10 + 4096);
    assert.deepEqual(got[k], want, `file ${k}`);
    // Its own buffer (transferable without taking others' bytes along).
    assert.equal(got[k].buffer.byteLength, 4096);
  });
  // 40 reads: 3 composite Blobs of at most 16 slices (the slices themselves are not counted: slice() makes no `new Blob`).
  assert.equal(made, 3);
});

test('batchedBlobReads: past the end, empty; a read cut short by the end of the file; one slot (parts 1) reads each alone', async () => {
  const f = new Blob([bytesOf(1000, 3)]);
  const read = batchedBlobReads();
  const [past, cut, whole] = await Promise.all([read(f)(2000, 10), read(f)(990, 100), read(f)(0, 1000)]);
  assert.equal(past.length, 0);
  assert.deepEqual(cut, bytesOf(1000, 3).slice(990));
  assert.deepEqual(whole, bytesOf(1000, 3));
  const alone = batchedBlobReads(1);
  const { got, made } = await countingBlobs(() => Promise.all([alone(f)(0, 10), alone(f)(10, 10)]));
  assert.deepEqual(got, [bytesOf(1000, 3).slice(0, 10), bytesOf(1000, 3).slice(10, 20)]);
  assert.equal(made, 0);
});

test('batchedBlobReads: a file that cannot be read fails its own read only (the others are read again one by one)', async () => {
  const good = [new Blob([bytesOf(3000, 1)]), new Blob([bytesOf(3000, 2)])];
  // A Blob whose reads fail, as a File changed on disk after it was picked does in a browser.
  const bad = new Blob([bytesOf(3000, 9)]);
  bad.slice = () => {
    const b = new Blob(['x']);
    b.arrayBuffer = () => Promise.reject(new Error('NotReadableError'));
    return b;
  };
  const read = batchedBlobReads();
  const got = await Promise.allSettled([read(good[0])(0, 512), read(bad)(0, 512), read(good[1])(100, 512)]);
  assert.equal(got[0].status, 'fulfilled');
  assert.deepEqual(got[0].value, bytesOf(3000, 1).slice(0, 512));
  assert.equal(got[1].status, 'rejected');
  assert.match(String(got[1].reason), /NotReadable/);
  assert.equal(got[2].status, 'fulfilled');
  assert.deepEqual(got[2].value, bytesOf(3000, 2).slice(100, 612));
});
