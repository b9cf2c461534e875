// The element's state without a DOM: EditorModel (www/editor-model.js) in
// Node on the web build — the probe queue, undo/redo over images, domain XML
// and layout, backing choices, edits, missing backings, diagnostics.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync, openSync, readSync, closeSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, basename } from 'node:path';
import { WWW } from '../support/server.mjs';
import { haveQemuImg, makeChain, qemuImg } from '../support/images.mjs';

const skip = haveQemuImg() ? false : 'qemu-img is not installed';
// The same module instance the model's editor-wasm.js imports.
const glue = await import(join(WWW, 'pkg', 'backing_chain.js'));
const { EditorModel } = await import(join(WWW, 'editor-model.js'));

before(() => glue.initSync({ module: readFileSync(join(WWW, 'pkg', 'backing_chain_bg.wasm')) }));

// The on-demand module (edits, diff, audit) is fetched by editor-wasm.js's
// loadMeta(): Node's fetch has no file: URLs, so they are read here (as a
// server sends them: application/wasm).
const netFetch = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  if (!String(url).startsWith('file:')) return netFetch(url, init);
  return new Response(readFileSync(new URL(String(url))), { headers: { 'content-type': 'application/wasm' } });
};

/** A reader of a file, as a host's addImage reader. */
const fileReader = (path) => async (offset, length) => {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const n = readSync(fd, buf, 0, length, offset);
    return new Uint8Array(buf.buffer, 0, n);
  } finally {
    closeSync(fd);
  }
};

function model() {
  const calls = { changed: 0, progress: [], history: [], restored: 0 };
  const m = new EditorModel({
    changed: () => {
      calls.changed++;
      m.compute();
    },
    progress: (done, total) => calls.progress.push([done, total]),
    history: (u, r) => calls.history.push([u, r]),
    restored: () => calls.restored++,
  });
  m.start();
  return { m, calls };
}

test('EditorModel: one probe run for images added together, undo/redo over images and domain XML (not the layout), saying what', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bce-model-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = makeChain(dir);
  const { m, calls } = model();
  const job = (p) => ({ name: `/images/${basename(p)}`, size: statSync(p).size, reader: fileReader(p) });
  // Three probes queued in the same tick: one run, one recomputation, one undo step.
  await Promise.all([m.probe([job(f.top)]), m.probe([job(f.mid)]), m.probe([job(f.base)])]);
  assert.equal(calls.changed, 1);
  assert.deepEqual(calls.progress.at(-1), [0, 0]);
  assert.equal(m.undoStack.length, 1);
  assert.deepEqual(m.forest.chains.map((c) => c.layers.map((i) => m.forest.images[i].filename)), [['/images/top.qcow2', '/images/mid.qcow2', '/images/base.qcow2']]);
  assert.match(m.output.xml, /<source file='\/images\/base\.qcow2'\/>/);
  // A domain XML (a step) and the flat layout (a view switch, not a step).
  m.setDomain("<domain><name>d</name><devices><disk type='file' device='disk'><source file='/images/top.qcow2'/><target dev='vda'/></disk></devices></domain>");
  m.set('layout', 'flat');
  // The top is index 1 (libvirt numbers the disk's own source first), so
  // the first layer's flat name is vda[2].
  assert.match(m.output.xml, /<alias name='vda\[2\]' parent='vda'\/>/);
  assert.equal(m.goodDomain, m.domainText);
  // Malformed XML: an error with its position and reason, the last good result kept.
  m.setDomain('<domain><devices><disk');
  assert.equal(typeof m.xmlError.position, 'number');
  assert.doesNotMatch(m.xmlError.message, /^XML error at byte/);
  assert.match(m.output.xml, /<name>d<\/name>/);
  // Undo walks back over the edits, saying what each was: the good domain,
  // then no domain, then no images. The layout is a view switch: not a step.
  assert.deepEqual(await m.undo(), { what: 'the domain XML', where: undefined });
  assert.equal(m.xmlError, null);
  assert.equal(m.layout, 'flat');
  assert.deepEqual(await m.undo(), { what: 'the domain XML', where: undefined });
  assert.equal(m.domainText, '');
  assert.equal(m.layout, 'flat');
  assert.deepEqual(await m.undo(), { what: 'adding 3 images', where: undefined });
  assert.equal(m.forest.images.length, 0);
  assert.equal(await m.undo(), false);
  // Redo brings the images back, read again through their jobs.
  assert.deepEqual(await m.redo(), { what: 'adding 3 images', where: undefined });
  assert.equal(m.forest.images.length, 3);
  assert.ok(calls.restored >= 4);
  assert.deepEqual(calls.history.at(-1), [true, true]);
});

test('EditorModel: backing choices, edits of the bare disks, missing backings', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bce-model-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = makeChain(dir);
  const { m } = model();
  // Top and base only: mid is missing, an absolute path a host may read.
  await m.probe([f.top, f.base].map((p) => ({ name: p, size: statSync(p).size, reader: fileReader(p) })));
  assert.deepEqual(m.missingBackings(), [f.mid]);
  // The user's choice: top's backing is base.
  m.setBacking(f.top, f.base);
  assert.deepEqual(m.forest.chains[0].layers.map((i) => m.forest.images[i].filename), [f.top, f.base]);
  assert.deepEqual(m.missingBackings(), []);
  // An edit of a chain that came from the images gives a domain XML of its own
  // (the edits are in the on-demand module: loaded first).
  assert.throws(() => m.edit({ op: 'set-terminator', disk: 0, on: false }), /the on-demand module \(edits, audit\) is not loaded yet/);
  await m.loadEdits();
  const next = m.edit({ op: 'set-terminator', disk: 0, on: false });
  assert.match(next, /<disk /);
  assert.doesNotMatch(next, /<backingStore\/>/);
  assert.throws(() => m.edit({ op: 'remove-layer', disk: 0, depth: 9 }), /no backing layer 9/);
  // Diagnostics: each once, errors first, with the image they are about.
  const d = m.diagnostics();
  const order = { error: 0, warning: 1, info: 2 };
  for (let i = 1; i < d.length; i++) assert.ok(order[d[i - 1].severity] <= order[d[i].severity]);
});

test('EditorModel: the on-demand module’s session holds the core’s images (probed, unreadable, from qemu-img JSON), order and backing choices, and is filled again after each change', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bce-model-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const f = makeChain(dir);
  const other = mkdtempSync(join(dir, 'json-'));
  const g = makeChain(other);
  const { m } = model();
  // Probed images given in an order the chains do not follow, and one whose reader fails.
  await m.probe([
    ...[f.base, f.top, f.mid].map((p) => ({ name: p, size: statSync(p).size, reader: fileReader(p) })),
    { name: '/gone.qcow2', size: 4096, reader: async () => { throw new Error('the file went away'); } },
  ]);
  // Images from a qemu-img JSON document.
  await m.addQemuImgJson(qemuImg('info', '--backing-chain', '--output=json', g.top));
  await m.loadEdits();
  // Two instances of the wasm, one filled from what the model keeps: the same forest.
  const core = m.s.forest();
  assert.equal(core.images.length, 7);
  assert.ok(core.images.some((im) => im.filename === '/gone.qcow2' && im.error));
  const ms = m.mirror();
  assert.deepEqual(ms.forest(), core);
  assert.equal(m.mirror(), ms, 'no change: the same session');
  // A backing choice (top backed by base), a removal: filled again, the same forest again.
  await m.setBacking(f.top, f.base);
  const chosen = m.mirror();
  assert.notEqual(chosen, ms);
  assert.deepEqual(chosen.forest(), m.s.forest());
  // top → base and mid → base, /gone.qcow2 alone, the JSON chain of three.
  assert.deepEqual(m.s.forest().chains.map((c) => c.layers.length).sort(), [1, 2, 2, 3]);
  m.remove(f.mid);
  assert.deepEqual(m.mirror().forest(), m.s.forest());
  // Undo brings mid back (probed again through its job): the same again.
  await m.undo();
  assert.equal(m.s.forest().images.length, 7);
  assert.deepEqual(m.mirror().forest(), m.s.forest());
});

test('EditorModel: an image named in two qemu-img JSON documents: the on-demand module’s session holds the version of the document the core was given last, in either order, again after a document is given again and after an undo; a probe after a document keeps its image through an undo', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bce-model-json2-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const g = makeChain(dir);
  // Document A: top and mid. Document B: mid and base, mid with another
  // virtual size (so that the two versions of mid differ in the forest).
  // The forest's order of the images is not the order they were given in
  // (base, top, mid here): a replay in the forest's order gets mid wrong.
  const a = JSON.stringify(JSON.parse(qemuImg('info', '--backing-chain', '--output=json', g.top)).slice(0, 2));
  const b = JSON.parse(qemuImg('info', '--backing-chain', '--output=json', g.mid));
  b[0]['virtual-size'] = 2 * b[0]['virtual-size'];
  const bText = JSON.stringify(b);
  for (const order of [[a, bText], [bText, a]]) {
    const { m } = model();
    await m.loadEdits();
    for (const text of order) await m.addQemuImgJson(text);
    const core = m.s.forest();
    assert.equal(core.images.length, 3);
    assert.deepEqual(m.mirror().forest(), core);
    // The core holds the mid of the document given last.
    assert.equal(JSON.stringify(core).includes(String(b[0]['virtual-size'])), order[1] === bText);
    // The first document again: its mid now, in both sessions.
    await m.addQemuImgJson(order[0]);
    assert.equal(JSON.stringify(m.s.forest()).includes(String(b[0]['virtual-size'])), order[0] === bText);
    assert.deepEqual(m.mirror().forest(), m.s.forest());
    // Undone: as before.
    await m.undo();
    assert.equal(m.s.forest().images.length, 3);
    assert.equal(JSON.stringify(m.s.forest()).includes(String(b[0]['virtual-size'])), order[1] === bText);
    assert.deepEqual(m.mirror().forest(), m.s.forest());
  }
  // A probe after a document that names the same image: the probed one is
  // kept, again after the document is given again and that is undone.
  const { m } = model();
  await m.loadEdits();
  await m.addQemuImgJson(bText);
  const mid = JSON.parse(bText)[0].filename;
  await m.probe([{ name: mid, size: statSync(g.mid).size, reader: fileReader(g.mid) }]);
  const probed = (f) => f.images.find((im) => im.filename === mid);
  const before = probed(m.s.forest());
  assert.ok(!JSON.stringify(before).includes(String(b[0]['virtual-size'])), 'the probe’s mid, not the document’s');
  await m.addQemuImgJson(bText);
  assert.ok(JSON.stringify(probed(m.s.forest())).includes(String(b[0]['virtual-size'])));
  assert.deepEqual(m.mirror().forest(), m.s.forest());
  await m.undo();
  assert.deepEqual(probed(m.s.forest()), before);
  assert.deepEqual(m.mirror().forest(), m.s.forest());
});
