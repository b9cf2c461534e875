// The stateful probe (`Probe`, `Session.newProbe`/`addProbe`, issue 18):
// each chunk is given once, in the round it was read, instead of every chunk
// read so far at every round (`probeStep`, `Session.probe`). For every
// format qemu-img makes (and the images that take several rounds) both ways
// give the same answers round by round, the same bytes read and the same
// image in a session (and so do the quiet forms, `stepQuiet` and
// `probeQuiet`, which answer `{ done: true }` instead of the facts);
// qemu-img says what each image is. Hostile chunks
// (outside the file, more bytes than asked, offsets that name no byte,
// overlapping) are clean errors or the old API's answer, never a trap; the
// core's limits (rounds, one read's size) hold through a Probe.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { haveQemuImg, qemuImg, qemuInfo } from '../support/images.mjs';
import { bigImages, formatImages, multiRoundImages, probeFile } from './bench-support.mjs';

const PKG = fileURLToPath(new URL('../../www/pkg/', import.meta.url));
const wasm = await import(join(PKG, 'backing_chain.js'));
const skip = haveQemuImg() ? false : 'qemu-img is not installed';
/** limits::MAX_ROUNDS and limits::MAX_READ of the core. */
const MAX_ROUNDS = 16;
const MAX_READ = 1 << 20;

before(() => {
  wasm.initSync({ module: readFileSync(join(PKG, 'backing_chain_bg.wasm')) });
});

function tmp(t) {
  const dir = mkdtempSync(join(tmpdir(), 'bce-state-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The old loop's step, a bad header as `{ error }` (as the page's worker did). */
const oldStep = (size, chunks) => {
  try {
    return wasm.probeStep(size, chunks);
  } catch (e) {
    return { error: e.message };
  }
};

/** Probe `path` with a `Probe`, giving each step only the chunks just read. Returns the answers and the chunks given per step. */
function probeState(probe, path) {
  const size = statSync(path).size;
  const fd = openSync(path, 'r');
  const answers = [];
  const given = [];
  try {
    let fresh = [];
    for (let round = 0; round < 64; round++) {
      given.push(fresh);
      const r = probe.step(fresh);
      answers.push(r);
      if (!r.need) return { answers, given };
      fresh = r.need.map(({ offset, len }) => {
        const n = Math.max(0, Math.min(len, size - offset));
        const buf = Buffer.alloc(n);
        const got = n ? readSync(fd, buf, 0, n, offset) : 0;
        return [offset, new Uint8Array(buf.buffer, buf.byteOffset, got), len];
      });
    }
    throw new Error(`${path}: probe did not finish`);
  } finally {
    closeSync(fd);
  }
}

test('every format qemu-img makes: a Probe given each chunk once answers as probeStep given every chunk each round, and a session adds the same image', { skip }, async (t) => {
  const dir = tmp(t);
  const images = [...formatImages(join(dir, 'formats')), ...multiRoundImages(join(dir, 'multi')), ...bigImages(join(dir, 'big'))];
  let multi = 0;
  for (const { label, path } of images) {
    const size = statSync(path).size;
    // The old loop, step by step: the answers it gave and the chunks it passed.
    const old = probeFile(oldStep, path);
    const oldAnswers = [];
    for (const chunks of old.steps) oldAnswers.push(oldStep(size, chunks));
    assert.deepEqual(oldAnswers.at(-1), old.result, label);

    const p = new wasm.Probe(size);
    const now = probeState(p, path);
    assert.deepEqual(now.answers, oldAnswers, `${label}: the same answer at each round`);
    // What the core counts: the bytes it holds (a range read again at the
    // same offset counts once, the longer read), as the old API counted.
    const longest = new Map();
    for (const [o, b] of old.steps.at(-1)) longest.set(o, Math.max(longest.get(o) ?? 0, b.length));
    const held = [...longest.values()].reduce((n, l) => n + l, 0);
    // Each chunk given once: what the old loop passed last, in the order read.
    assert.deepEqual(now.given.flat(), old.steps.at(-1), label);
    assert.throws(() => p.step([]), /the probe is finished/, label);
    p.free();
    if (now.answers.length > 2) multi++;

    // The page's session: Session.probe each round, or a Probe added once.
    const s1 = new wasm.Session();
    probeFile((sz, chunks) => s1.probe(label, sz, chunks), path);
    const s2 = new wasm.Session();
    const q = s2.newProbe(size);
    probeState(q, path);
    s2.addProbe(label, q);
    assert.equal(q.__wbg_ptr, 0, `${label}: addProbe uses the probe up`);
    const [a, b] = [s1.forest().images, s2.forest().images];
    assert.equal(b.length, 1, label);
    assert.deepEqual(b, a, `${label}: the same image`);
    assert.equal(b[0]['bytes-read'], held, label);

    // The quiet forms (what the worker and the page run for a dropped
    // file): the same reads asked for round by round, `{ done: true }`
    // instead of the facts at the end, and the same image added.
    const pq = new wasm.Probe(size);
    const quiet = probeState({ step: (c) => pq.stepQuiet(c) }, path);
    assert.deepEqual(quiet.answers, [...oldAnswers.slice(0, -1), { done: true }], `${label}: stepQuiet`);
    assert.deepEqual(quiet.given.flat(), old.steps.at(-1), label);
    assert.throws(() => pq.stepQuiet([]), /the probe is finished/, label);
    const s3 = new wasm.Session();
    s3.addProbe(label, pq);
    const s4 = new wasm.Session();
    const pageQuiet = probeFile((sz, chunks) => s4.probeQuiet(label, sz, chunks), path);
    assert.deepEqual(pageQuiet.result, { done: true }, `${label}: probeQuiet`);
    assert.deepEqual(pageQuiet.steps, old.steps, `${label}: probeQuiet asks as probe`);
    assert.deepEqual(s3.forest().images, a, `${label}: the same image after stepQuiet`);
    assert.deepEqual(s4.forest().images, a, `${label}: the same image after probeQuiet`);
    for (const s of [s1, s2, s3, s4]) s.free();

    // The oracle: the format qemu-img sees (a fixed VHD has only a footer,
    // which qemu's probe does not look at: opened as vpc when told so).
    const theirs = qemuInfo(path, label === 'vpc-fixed' ? 'vpc' : undefined).format;
    assert.equal(now.answers.at(-1).info?.format ?? `error: ${now.answers.at(-1).error}`, theirs, label);
    t.diagnostic(`${label}: ${now.answers.length - 1} round(s), ${old.bytesRead} B read; bytes passed in: ${old.steps.flat().reduce((n, c) => n + c[1].length, 0)} B by probeStep, ${now.given.flat().reduce((n, c) => n + c[1].length, 0)} B by a Probe`);
  }
  assert.ok(multi >= 5, `${multi} images took more than one round`);
});

test('hostile chunks: clean errors (nothing kept), never a trap; what the old API accepts answers the same', { skip }, async (t) => {
  const dir = tmp(t);
  qemuImg('create', '-q', '-f', 'qcow2', join(dir, 'a.qcow2'), '1G');
  const bytes = new Uint8Array(readFileSync(join(dir, 'a.qcow2')));
  const size = bytes.length;
  const head = bytes.subarray(0, 4096);
  const clean = wasm.probeStep(size, [[0, head, 4096], [32768, bytes.subarray(32768, 32775), 7]]);
  assert.equal(clean.info.format, 'qcow2');
  const bad = [
    // Bytes at or past the end of a file whose size is known: no read gives them.
    { chunks: [[size, new Uint8Array(16), 16]], error: new RegExp(`^chunk at ${size} \\(16 bytes\\): bytes past the end of the file$`) },
    { chunks: [[2 ** 40, new Uint8Array(1), 1]], error: /^chunk at 1099511627776 \(1 bytes\): bytes past the end of the file$/ },
    // More bytes than the range asked for.
    { chunks: [[0, head, 100]], error: /^chunk at 0 \(4096 bytes\): more bytes than its askedLen$/ },
    // Offsets and lengths that name no byte of a file.
    ...[-1, 1.5, NaN, Infinity, 2 ** 53, 2 ** 64, '0', null].map((o) => ({ chunks: [[o, head, 4096]], error: /chunk offset must be a whole number from 0 to 2\^53 - 1/ })),
    ...[-4096, 0.5, NaN, 2 ** 60].map((l) => ({ chunks: [[0, head, l]], error: /chunk askedLen must be a whole number/ })),
    { chunks: [[0, 'bytes', 4096]], error: /chunk bytes must be a Uint8Array/ },
    { chunks: [42], error: /chunk must be \[offset, bytes, askedLen\]/ },
  ];
  for (const { chunks, error } of bad) {
    const what = JSON.stringify(chunks, (k, v) => (v instanceof Uint8Array ? `${v.length} bytes` : typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
    // The old API refuses them the same way.
    assert.throws(() => wasm.probeStep(size, chunks), (e) => e instanceof Error && error.test(e.message), `probeStep ${what}`);
    const s = new wasm.Session();
    assert.throws(() => s.probe('x', size, chunks), (e) => e instanceof Error && error.test(e.message), `Session.probe ${what}`);
    assert.equal(s.length, 0);
    // A Probe too; a good chunk given with a bad one is not kept either: the
    // probe goes on as if the call had not been made.
    const p = new wasm.Probe(size);
    assert.ok(p.step([]).need);
    assert.throws(() => p.step([[0, head, 4096], ...chunks]), (e) => e instanceof Error && error.test(e.message), `Probe ${what}`);
    assert.deepEqual(p.step([[0, head, 4096], [32768, bytes.subarray(32768, 32775), 7]]), clean, what);
    s.addProbe('x', p);
    const [image] = s.forest().images;
    assert.equal(image.format, 'qcow2');
    assert.equal(image['bytes-read'], 4096 + 7, `${what}: only the good chunks kept`);
    s.free();
  }
  // Accepted, and answered as the old API answers the same chunks (all at
  // once there, over two steps here): overlapping chunks (a later one inside
  // the header, other bytes), the same offset twice (the longer is kept), a
  // huge askedLen with a short chunk (the file ends there: "truncated"), an
  // unknown size with a chunk far out.
  const garbage = new Uint8Array(64).fill(0xff);
  const cases = [
    { size, first: [[0, head, 4096]], then: [[100, garbage, 64], [32768, bytes.subarray(32768, 32775), 7]] },
    { size, first: [[0, head.subarray(0, 200), 200]], then: [[0, head, 4096], [32768, bytes.subarray(32768, 32775), 7]] },
    { size, first: [[0, head, 4096]], then: [[0, head.subarray(0, 10), 10]] },
    { size, first: [[0, head.subarray(0, 72), 2 ** 53 - 1]], then: [] },
    { size: -1, first: [[2 ** 52, garbage, 64]], then: [[0, head, 4096]] },
    { size: 2 ** 53, first: [[0, head, 4096], [2 ** 53 - 64, garbage, 64]], then: [] },
  ];
  for (const { size: sz, first, then } of cases) {
    const p = new wasm.Probe(sz);
    const a1 = p.step(first);
    const a2 = a1.need ? p.step(then) : a1;
    assert.deepEqual(a1, oldStep(sz, first));
    if (a1.need) assert.deepEqual(a2, oldStep(sz, [...first, ...then]));
    t.diagnostic(`${JSON.stringify(first.map(([o, b, l]) => [o, b.length, l]))} then ${JSON.stringify(then.map(([o, b, l]) => [o, b.length, l]))}: ${JSON.stringify(a2).slice(0, 100)}`);
    p.free();
  }
});

test('the core’s limits hold through a Probe: no more rounds than limits::MAX_ROUNDS, no read over limits::MAX_READ; a probe that is not finished cannot be added', { skip }, async (t) => {
  // A probe given nothing each round asks again, until the round limit:
  // `{ error }` (as image::probe_with says it), never a 17th `need`.
  const p = new wasm.Probe(1 << 30);
  let answers = 0;
  let r;
  for (;;) {
    r = p.step([]);
    answers++;
    if (!r.need) break;
    assert.ok(answers < MAX_ROUNDS, `${answers} needs`);
  }
  assert.equal(answers, MAX_ROUNDS);
  assert.deepEqual(r, { error: `header needs more than ${MAX_ROUNDS} reads` });
  const s = new wasm.Session();
  s.addProbe('endless.img', p);
  assert.deepEqual(s.forest().images.map((i) => [i.filename, i.error]), [['endless.img', `header needs more than ${MAX_ROUNDS} reads`]]);

  // A probe that still needs reads is refused (and used up): the session is unchanged.
  const q = new wasm.Probe(1 << 30);
  assert.ok(q.step([]).need);
  assert.throws(() => s.addProbe('half.img', q), /the probe is not finished: it still needs reads/);
  assert.equal(s.length, 1);
  s.free();

  // A header that asks for more than the core reads in one piece: a qcow2 of
  // 2 MiB clusters with a header extension of 1.5 MiB (inside its cluster).
  const dir = tmp(t);
  const path = join(dir, 'big-ext.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=2M', path, '1G');
  const b = readFileSync(path);
  const at = b.readUInt32BE(100); // header_length: the extensions start here
  b.writeUInt32BE(0x12345678, at); // an extension no one knows…
  b.writeUInt32BE(1536 << 10, at + 4); // …of 1.5 MiB
  writeFileSync(path, b);
  const { answers: got } = probeState(new wasm.Probe(b.length), path);
  const last = got.at(-1);
  assert.match(last.error ?? '', new RegExp(`needs ${1536 << 10} bytes in one piece, more than the limit of ${MAX_READ}`));
  assert.ok(got.every((a) => !a.need || a.need.every((n) => n.len <= MAX_READ)));
  // The old loop says the same (it throws). (qemu-img opens this image: the
  // limit is the core's own, a bound on what one probe reads at once.)
  assert.deepEqual(probeFile(oldStep, path).result, last);
});

// Last in this file: it makes the wasm instance panic.
test('the element’s guarded session (editor-wasm.js): the Probes it makes are guarded, addProbe takes them back, and after a panic a step is a CorePanic', { skip }, async (t) => {
  const { newSession, CorePanic } = await import('../../www/editor-wasm.js');
  const dir = tmp(t);
  const path = join(dir, 'a.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', path, '1G');
  const s = newSession();
  const p = s.newProbe(statSync(path).size);
  assert.ok(p.__raw instanceof wasm.Probe, 'a Probe behind a guard');
  const { answers } = probeState(p, path);
  assert.equal(answers.at(-1).info.format, 'qcow2');
  s.addProbe('a.qcow2', p);
  assert.equal(p.__raw.__wbg_ptr, 0, 'used up');
  assert.deepEqual(s.forest().images.map((i) => [i.filename, i.format]), [['a.qcow2', 'qcow2']]);

  // A real panic in the instance (as browser-page.test.mjs makes one: the raw
  // domainName export given bytes that are not UTF-8), then a guarded step.
  const q = s.newProbe(100);
  const raw = wasm.initSync({ module: readFileSync(join(PKG, 'backing_chain_bg.wasm')) });
  const enc = new TextEncoder();
  const bytes = new Uint8Array([...enc.encode(`<domain>${'<a/>'.repeat(70)}`), 0x80, ...enc.encode('</domain>')]);
  const ptr = raw.__wbindgen_export(bytes.length, 1) >>> 0;
  new Uint8Array(raw.memory.buffer, ptr, bytes.length).set(bytes);
  const console0 = console.error;
  console.error = () => {}; // the panic hook's report
  try {
    assert.throws(() => raw.domainName(raw.__wbindgen_add_to_stack_pointer(-16), ptr, bytes.length), WebAssembly.RuntimeError);
  } finally {
    console.error = console0;
  }
  assert.throws(() => q.step([]), (e) => e instanceof CorePanic && /backing-chain internal error: panicked at src\/xml/.test(e.message));
});
