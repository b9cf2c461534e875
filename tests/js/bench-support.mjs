// Shared by the JS benches and the bytes-read test: loading the wasm in Node,
// the probe loop, images made with qemu-img, alternated timing and the result
// lines `.ci/bench` collects. Not a test file (no `.test.` in the name).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, closeSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { haveQemuImg } from '../support/images.mjs';
import { ENTRY, WASM_MODULES, WORKER, bundle, closure } from '../../.ci/ship.mjs';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const PKG = join(ROOT, 'www/pkg');

/** Bytes a probe may read per image, per format (the issue: "a few KiB",
 * even of a 100 GB image). A format without its own entry gets `default`. */
export const BYTES_BUDGET = { default: 16 << 10 };
export const budgetFor = (format) => BYTES_BUDGET[format] ?? BYTES_BUDGET.default;

/** A wasm module of www/pkg, loaded as Node loads it (initSync with the
 * bytes): the core (`backing_chain`) by default, or the metadata walks
 * (`backing_chain_meta`, issue 18's second module). */
export async function loadWasm(name = 'backing_chain') {
  const wasmPath = join(PKG, `${name}_bg.wasm`);
  if (!existsSync(wasmPath)) throw new Error(`${wasmPath} is missing: run bash .ci/build`);
  const mod = await import(join(PKG, `${name}.js`));
  const exports = mod.initSync({ module: readFileSync(wasmPath) });
  return { ...mod, exports };
}

/** One result row for `.ci/bench`: name, figure, target, verdict. */
export function report(name, figure, target, pass) {
  const verdict = pass === true ? 'pass' : pass === false ? 'FAIL' : '-';
  console.log(['@@', name, figure, target, verdict].join('\t'));
}

export function median(xs) {
  const v = [...xs].sort((a, b) => a - b);
  const n = v.length;
  return n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

export const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : ms >= 1 ? `${ms.toFixed(1)} ms` : `${(ms * 1000).toFixed(1)} µs`);

export function qemuImg(args, cwd) {
  return execFileSync('qemu-img', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

export function hasQemuImg() {
  return haveQemuImg();
}

/** Formats this qemu-img supports (`qemu-img --help`). */
export function qemuImgFormats() {
  const help = qemuImg(['--help']);
  const lines = help.split('\n');
  const at = lines.findIndex((l) => l.startsWith('Supported'));
  const out = [];
  for (const l of lines.slice(at + 1)) {
    if (!l.trim()) {
      if (out.length) break;
      continue;
    }
    out.push(...l.trim().split(/\s+/));
  }
  return out;
}

/** One image per format qemu-img can create (and a few variants), with a
 * backing file where the format takes one; new formats are picked up
 * without edits. Returns [{label, format, path}]. */
export function formatImages(dir) {
  mkdirSync(dir, { recursive: true });
  qemuImg(['create', '-q', '-f', 'qcow2', 'base.qcow2', '1G'], dir);
  const todo = qemuImgFormats()
    .filter((f) => f !== 'file')
    .map((f) => ({ label: f, format: f, opts: [] }));
  todo.push(
    { label: 'qcow2-v2', format: 'qcow2', opts: ['-o', 'compat=0.10'] },
    { label: 'vmdk-streamOptimized', format: 'vmdk', opts: ['-o', 'subformat=streamOptimized'] },
    { label: 'vpc-fixed', format: 'vpc', opts: ['-o', 'subformat=fixed'] },
  );
  const out = [];
  for (const { label, format, opts } of todo) {
    const name = `img-${label}.${format}`;
    let base = ['create', '-q', '-f', format, ...opts];
    if (format === 'luks') {
      base = ['create', '-q', '--object', 'secret,id=s0,data=benchpass', '-f', 'luks', '-o', 'key-secret=s0,iter-time=10', ...opts];
    }
    for (const extra of [['-b', 'base.qcow2', '-F', 'qcow2'], ['-b', 'base.qcow2'], []]) {
      try {
        qemuImg([...base, ...extra, name, '1G'], dir);
        out.push({ label, format, path: join(dir, name) });
        break;
      } catch {
        /* next try */
      }
    }
  }
  return out;
}

/** The 100 GB sparse images: raw (a hole) and qcow2 with its metadata preallocated. */
export function bigImages(dir) {
  mkdirSync(dir, { recursive: true });
  const raw = join(dir, 'big-100G.raw');
  if (!existsSync(raw)) execFileSync('truncate', ['-s', '100G', raw]);
  const q = join(dir, 'big-100G.qcow2');
  if (!existsSync(q)) qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'preallocation=metadata', q, '100G'], dir);
  return [
    { label: 'raw 100G sparse', format: 'raw', path: raw },
    { label: 'qcow2 100G, metadata preallocated', format: 'qcow2', path: q },
  ];
}

/** Drive a probe function (`probeStep` or `session.probe` bound to a name)
 * with positioned reads of `path`. Returns {result, steps, bytesRead}: `steps`
 * are the chunk lists passed at each call, so the probe can be replayed. */
export function probeFile(step, path) {
  const size = statSync(path).size;
  const fd = openSync(path, 'r');
  try {
    const chunks = [];
    const steps = [];
    let bytesRead = 0;
    for (let round = 0; round < 64; round++) {
      steps.push(chunks.slice());
      const r = step(size, chunks);
      if (!r.need) return { result: r, steps, size, bytesRead };
      for (const { offset, len } of r.need) {
        const n = Math.max(0, Math.min(len, size - offset));
        const buf = Buffer.alloc(n);
        const got = n ? readSync(fd, buf, 0, n, offset) : 0;
        bytesRead += got;
        chunks.push([offset, new Uint8Array(buf.buffer, buf.byteOffset, got), len]);
      }
    }
    throw new Error(`${path}: probe did not finish`);
  } finally {
    closeSync(fd);
  }
}

/** Images whose probe through wasm takes more than one round of reads (and
 * a few that take one, for comparison), made by qemu-img in `dir`: vhdx
 * (headers and region table, metadata table, items: four rounds), raw and
 * fixed VPC (the footer and the ISO descriptor after the header), qcow2
 * with a dirty bitmap or LUKS encryption (their header extensions'
 * tables), a VMDK descriptor longer than 4 KiB (twoGbMaxExtentFlat of 300
 * GB: 150 extents, sparse files); one round: qcow2 with internal snapshots
 * (the page's probe does not read the snapshot table), VMDK
 * monolithicSparse and twoGbMaxExtentSparse. Returns [{label, format,
 * path}]. */
export function multiRoundImages(dir) {
  mkdirSync(dir, { recursive: true });
  const secret = ['--object', 'secret,id=s0,data=benchpass'];
  const todo = [
    { label: 'vhdx', format: 'vhdx', name: 'm.vhdx', runs: [['create', '-q', '-f', 'vhdx', 'm.vhdx', '1G']] },
    { label: 'raw', format: 'raw', name: 'm.raw', runs: [['create', '-q', '-f', 'raw', 'm.raw', '1G']] },
    { label: 'vpc-fixed', format: 'vpc', name: 'm-fixed.vpc', runs: [['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed', 'm-fixed.vpc', '64M']] },
    { label: 'qcow2 with a bitmap', format: 'qcow2', name: 'm-bitmap.qcow2', runs: [['create', '-q', '-f', 'qcow2', 'm-bitmap.qcow2', '1G'], ['bitmap', '--add', 'm-bitmap.qcow2', 'b0']] },
    { label: 'qcow2 LUKS-encrypted', format: 'qcow2', name: 'm-luks.qcow2', runs: [['create', '-q', ...secret, '-f', 'qcow2', '-o', 'encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10', 'm-luks.qcow2', '1G']] },
    { label: 'vmdk twoGbMaxExtentFlat 300G (6 KiB descriptor)', format: 'vmdk', name: 'm-2gbflat.vmdk', runs: [['create', '-q', '-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentFlat', 'm-2gbflat.vmdk', '300G']] },
    { label: 'qcow2 with 2 snapshots', format: 'qcow2', name: 'm-snap.qcow2', runs: [['create', '-q', '-f', 'qcow2', 'm-snap.qcow2', '1G'], ['snapshot', '-c', 's1', 'm-snap.qcow2'], ['snapshot', '-c', 's2', 'm-snap.qcow2']] },
    { label: 'vmdk monolithicSparse', format: 'vmdk', name: 'm-sparse.vmdk', runs: [['create', '-q', '-f', 'vmdk', 'm-sparse.vmdk', '1G']] },
    { label: 'vmdk twoGbMaxExtentSparse', format: 'vmdk', name: 'm-2gb.vmdk', runs: [['create', '-q', '-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse', 'm-2gb.vmdk', '5G']] },
  ];
  return todo.map(({ label, format, name, runs }) => {
    const path = join(dir, name);
    if (!existsSync(path)) for (const args of runs) qemuImg(args, dir);
    return { label, format, path };
  });
}

/** The chunks a probe asks for, read from `path` once: [{need, chunks}] per
 * round (`chunks`: the bytes read for that round's `need`, as the page reads
 * them), the final answer, the file's size and the bytes read. `step` is
 * the old stateless step (`probeStep` or a session's `probe` bound to a name). */
export function recordProbe(step, path) {
  const { steps, result, size, bytesRead } = probeFile(step, path);
  const rounds = steps.slice(1).map((all, k) => all.slice(steps[k].length));
  return { rounds, result, size, bytesRead };
}

/** Groups of ten sharing bases: base ← l1 ← l2 ← l3 ← l4, five overlays on l2.
 * Names have a fixed length (9 characters + `.qcow2`). */
export function forestLayout(n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const g = Math.floor(i / 10);
    const k = i % 10;
    const name = (k) => `g${String(g).padStart(6, '0')}-${k}.qcow2`;
    const backing = k === 0 ? null : k <= 4 ? name(k - 1) : name(2);
    out.push({ dir: `pool${g % 37}`, name: name(k), backing });
  }
  return out;
}

/** One chain: layer i backed by layer i - 1. */
export function deepLayout(n) {
  const name = (i) => `l${String(i).padStart(8, '0')}.qcow2`;
  return Array.from({ length: n }, (_, i) => ({ dir: 'deep', name: name(i), backing: i ? name(i - 1) : null }));
}

const PLACEHOLDER = 'XXXXXXXXX.qcow2';

/** Header templates made by qemu-img: a base and an overlay whose backing
 * name is a placeholder of the same length as the layout names, so headers
 * for any layout are the template with the name patched. */
export function templates(dir) {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, PLACEHOLDER);
  const top = join(dir, 'tpl-top.qcow2');
  if (!existsSync(top)) {
    qemuImg(['create', '-q', '-f', 'qcow2', base, '1G'], dir);
    qemuImg(['create', '-q', '-f', 'qcow2', '-b', PLACEHOLDER, '-F', 'qcow2', top, '1G'], dir);
  }
  const head = (p) => {
    const b = readFileSync(p);
    return { size: b.length, bytes: new Uint8Array(b.buffer, b.byteOffset, Math.min(b.length, 64 << 10)) };
  };
  const t = head(top);
  const at = Buffer.from(t.bytes).indexOf(PLACEHOLDER);
  if (at < 0) throw new Error('placeholder not found in the template header');
  return { base: head(base), top: t, nameAt: at };
}

/** The header bytes of one layout entry. */
export function headerOf(tpl, entry) {
  if (!entry.backing) return tpl.base;
  if (entry.backing.length !== PLACEHOLDER.length) throw new Error(`name length: ${entry.backing}`);
  const bytes = tpl.top.bytes.slice();
  bytes.set(Buffer.from(entry.backing, 'latin1'), tpl.nameAt);
  return { size: tpl.top.size, bytes };
}

/** Probe in-memory header bytes with a step function. */
export function probeBytes(step, { size, bytes }) {
  const chunks = [];
  for (let round = 0; round < 64; round++) {
    const r = step(size, chunks);
    if (!r.need) return r;
    for (const { offset, len } of r.need) {
      const end = Math.min(offset + len, size);
      if (end > bytes.length) throw new Error(`template too short for a read at ${offset}+${len}`);
      chunks.push([offset, bytes.subarray(offset, Math.max(offset, end)), len]);
    }
  }
  throw new Error('probe did not finish');
}

/** Make the layout's images with qemu-img (in parallel: `-u` does not open
 * the backing file), cached in `dir` across runs. Returns the paths. */
export async function makeLayout(dir, layout, parallel = 4) {
  const paths = layout.map((e) => join(dir, e.name));
  const marker = join(dir, `.complete-${layout.length}`);
  if (existsSync(marker)) return paths;
  mkdirSync(dir, { recursive: true });
  const { execFile } = await import('node:child_process');
  const run = (args) =>
    new Promise((ok, fail) => execFile('qemu-img', args, { cwd: dir }, (err) => (err ? fail(err) : ok())));
  let next = 0;
  const worker = async () => {
    while (next < layout.length) {
      const e = layout[next++];
      const b = e.backing ? ['-u', '-b', e.backing, '-F', 'qcow2'] : [];
      await run(['create', '-q', '-f', 'qcow2', ...b, e.name, '1G']);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  writeFileSync(marker, '');
  return paths;
}

/** The component as it ships, gzipped at level 9 one file at a time (as a
 * server sends them): the element as the npm package ships it
 * (`.ci/ship.mjs` bundle(), used by `.ci/pack.mjs`; the package test runs the
 * element from that package) — backing-chain-editor.js (the element and its
 * static imports in one module), the modules it imports on demand, the probe
 * worker, the wasm-bindgen glue minified — the wasm, and the pages' own
 * modules in www/ (app.js, the audit page) as written, as `npm start` serves
 * them. Returns {rows: [{file, raw, gz, written, shipped, first}], total,
 * first, written}: `gz` what ships, `written` the www/ files it is made of as
 * written gzipped one by one (the total: every www/ file once), `first` whether the element loads it at start
 * (the bundled entry, the core's glue and wasm: first paint; not the metadata
 * module, its glue and the modules imported on demand, which count in the
 * total only), and `shown`: what a page loads to show images and a domain
 * XML without an edit (first paint and the probe worker, which reads the
 * dropped files; not the on-demand module: tests/js/browser-alloc.test.mjs
 * checks in Chromium that it is not fetched). @returns {Promise<{ rows: Array<{ file: string, raw: number, gz: number, written: number, shipped: string, first: boolean }>, total: number, first: number, shown: number, written: number }>} */
export async function gzippedSize() {
  const www = join(ROOT, 'www');
  const walk = (dir) =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      const p = join(dir, e.name);
      if (e.isDirectory()) return walk(p);
      // Examples of embedding (www/cockpit/…-example.js) are not the component.
      return /\.(wasm|m?js)$/.test(e.name) && !/example/.test(e.name) ? [p] : [];
    });
  const gz = (b) => gzipSync(b, { level: 9 }).length;
  const writtenGz = (/** @type {string} */ f) => gz(readFileSync(join(www, f)));
  // What the bundle is made of, as written: the entry's static imports; each
  // on-demand module and the worker their own closures less the entry's.
  const statics = closure(www, ENTRY, true);
  const sources = (/** @type {string} */ f) => (f === ENTRY ? statics : f.startsWith('pkg/') ? [f] : closure(www, f, true).filter((m) => f === WORKER || !statics.includes(m)));
  const shipped = await bundle(www);
  const element = new Set([...closure(www, ENTRY), ...closure(www, WORKER), ...WASM_MODULES.map((m) => m.glue)]);
  const rows = [
    ...shipped.map(({ file, code, first }) => {
      const out = Buffer.from(code);
      const parts = sources(file);
      return { file, raw: out.length, gz: gz(out), written: parts.reduce((s, f) => s + writtenGz(f), 0), shipped: file.startsWith('pkg/') ? 'minified' : `bundled (${parts.length} module${parts.length === 1 ? '' : 's'})`, first };
    }),
    ...walk(www)
      .map((p) => relative(www, p))
      .filter((file) => !element.has(file))
      .map((file) => {
        const raw = readFileSync(join(www, file));
        const isWasm = file.endsWith('.wasm');
        return { file, raw: raw.length, gz: gz(raw), written: gz(raw), shipped: isWasm ? 'wasm' : 'as written', first: isWasm && WASM_MODULES.some((m) => m.firstPaint && m.wasm === file) };
      }),
  ].sort((a, b) => (a.file < b.file ? -1 : 1));
  const sum = (rs, k = 'gz') => rs.reduce((s, r) => s + r[k], 0);
  // Every www/ file once as written (reader.js is in the entry and the worker).
  const written = walk(www).reduce((s, p) => s + gz(readFileSync(p)), 0);
  return { rows, total: sum(rows), first: sum(rows.filter((r) => r.first)), shown: sum(rows.filter((r) => r.first || r.file === WORKER)), written };
}
/** Issue 7's target for wasm + JS gzipped (reported by .ci/bench; missed today). */
export const SIZE_BUDGET = 150 * 1024;
/**
 * What the size test enforces: the last size measured plus a little room. The
 * 150 KiB target is not met (BENCHMARKS.md says where the bytes go); this
 * ceiling stops further growth until it is.
 */
// 240 KiB until 2026-11-26; raised by the 6 KiB that the COWD descriptor, the
// VHDX region checks, volume/NVMe edits, libvirt schema-gap diagnostics and
// the page's lazy rendering added (244.5 KiB at 945ac56); raised again to 248
// KiB by the well-formedness checks xmllint makes and we did not (XML names,
// processing-instruction targets, the XML declaration, `]]>` in text) and the ordered
// map of the duplicate-attribute check (246.9 KiB with them); then to 250 KiB
// by the batch reordering that makes chains come out in the order the images
// were given (`Session.orderAdded`, 1.0 KiB: 247.9 KiB).
// Raised to 285 KiB on 2026-12-02 by issues 13 and 14 (283.9 KiB measured):
// the safety inspector (partition tables, ISO look, extents) +4.5 KiB wasm;
// libvirt's index numbering, <dataStore>, absent layers and the layout-keeping
// round trips +13 KiB wasm; the element split into modules with JSDoc types
// +13.9 KiB JS (per-file gzip, types and docs); typed facts -0.4 KiB. Issue 18
// is where it comes down (150 KiB).
// Raised to 300 KiB on 2026-12-02 by issue 15 (295.6 KiB measured): the page
// an admin wants — five new view modules (summary 1.2, filter 1.6, fixes 1.6,
// combobox 1.6, menu 1.3 KiB gzipped) and the tree, chains table, element,
// styles and model growing by 7.4 KiB (sorting, filter, shared base once,
// accessible names, XML differences, undo that says what it undid); the wasm
// +0.1 KiB (rebaseCommand).
// Raised to 302 KiB by issue 16 (300.7 KiB measured; 282.0 KiB on the same
// tree without it): the image-store audit (`src/audit`, `Session.audit`)
// +18.7 KiB, of which the audit model itself (users, dependents, roles,
// verdicts, plans, per-VM totals, messages) about 17 KB raw wasm, the
// several-domains reader 2.6 KB, CSV and fix script 3.7 KB, its serde
// serialisers about 5 KB. Sorting, extra hash-map kinds, serde maps of
// options and a copy of the images were taken out again (-6 KiB).
// Then to 310 KiB by the audit page (issue 16; 309.1 KiB measured):
// www/editor-audit.js (the SVG picture, its layout, zoom/pan, keyboard moves
// between nodes, the table and the verdicts view) 5.5 KiB and www/audit.js
// (the page's wiring) 2.2 KiB; the element does not load them.
// Both together (issues 15 and 16 merged): 322.9 KiB measured, ceiling 325 KiB.
// Raised to 306 KiB on 2026-12-02 by issue 17 (304.4 KiB measured, 281.3
// before): the metadata walks (qcow2 L1/L2/refcount/snapshot/bitmap walker,
// check, chain map, measure; MetaWalk/MetaChain) +22.1 KiB wasm, +0.9 KiB glue,
// after taking out the ordered maps and the standard sorts (a radix sort
// instead: -7.9 KiB); then to 313 KiB (311.1 measured) by the qed, vdi,
// vpc, vhdx and VMDK sparse walkers (+6.7 KiB).
// Issues 14, 15, 16 and 17 merged: 356.0 KiB measured (wasm 678,339 bytes raw), ceiling 358 KiB.
// Lowered to 273 KiB by issue 18 (270.8 KiB measured, 323.9 before; first
// paint 263.0 KiB; BENCHMARKS.md lists each step): wasm-opt passes that gzip
// better than -Oz (−15.5), typed probe answers (−0.6), the element's modules
// and glue measured minified as the npm package ships them (−25.0), edit ops
// read without serde's buffering tagged-enum reader (−10.5), the probe's reads
// in a sorted vector instead of a BTreeMap (−1.5).
// Issues 14–18 merged (the metadata walks included): 298.9 KiB as shipped (first paint 290.7 KiB; every file as written 324.7 KiB; wasm 665,995 bytes raw), ceiling 301 KiB.
// The probe worker (issue 18; branch figure 328.7 KiB before the size steps) (issue 18; 328.7 KiB measured):
// www/probe-worker.js 1.6 KiB (loaded when files are dropped, not at first
// paint), reader.js +2.5 KiB (the worker client and its fallbacks), the
// tree's later tasks +0.6 KiB (BENCHMARKS.md).
// With the worker merged too: 301.1 KiB as shipped (first paint 292.2 KiB; every file as written 329.5 KiB; wasm 666,316 bytes raw), ceiling 303 KiB.
// Raised to 364 KiB by issue 17's page and element part (363.7 KiB measured,
// the same wasm): www/editor-alloc.js (the allocation bars, chain map strip,
// summary, estimates, check lines, progress and Cancel) 4.3 KiB,
// www/editor-meta.js (the MetaWalk loop: batched reads through each image's
// reader, progress, AbortSignal) 1.9 KiB, the element's allocation()/check()/chainMap()
// +1.0 KiB, styles +0.3, guarded MetaWalk/MetaChain in editor-wasm.js +0.2 KiB
// (+7.8 KiB of JS in all).
// With the allocation view merged too (issue 17, +4.6 KiB minified): 305.7 KiB;
// then domainName (download names from the core, +0.4 KiB): 306.1 KiB as
// shipped (first paint 297.2 KiB; every file as written 337.7 KiB), ceiling 308 KiB.
// Then the core's own JSON reader instead of serde_json's parser and Value
// (issue 18): 293.4 KiB as shipped (first paint 284.5 KiB), ceiling 295 KiB.
// Raised to 395 KiB by the split of the wasm in two (issue 18: 392.9 KiB
// measured, 306.1 before) while first paint went DOWN from 297.2 to 266.5
// KiB: the metadata walks (MetaWalk, MetaChain) left the core (wasm 666,889
// → 591,820 bytes, 256.5 → 229.3 KiB gzipped) for a second module loaded
// when the user first asks for an allocation, a check or a chain map
// (backing_chain_meta_bg.wasm 286,114 bytes, 110.7 KiB gzipped; its glue 3.2
// KiB), and www/editor-meta.js and editor-alloc.js (3.7 KiB) became dynamic
// imports. The total grows by what the two modules cannot share: the meta
// module carries its own copy of the header probe of every format (a walk
// probes first; ~78 KB of code), the serde serialisers of the header facts
// and layers, float formatting (serde-wasm-bindgen's error messages), the
// allocator and the wasm-bindgen runtime.
// Lowered by 7 KiB (both ceilings) by the element shipped bundled (issue 18,
// branch wt3-bundle: 372.4 KiB measured in all, 379.4 before; first paint
// 249.1 KiB, 256.4 before): its 18 static modules in one ES module (JS at
// first paint 40,216 → 33,071 B gzipped), the CSS minified as CSS (−357 B),
// the probe worker one file with reader.js in it; written as main's ceiling
// less the step, so that the wasm steps' own lowering adds up.

/**
 * Run in the page before its scripts (`addInitScript(dropTiming, tops)`): times
 * the first drop from the page's first drop listener (a capture listener on
 * window) to the element's tree showing `want` chains, two frames later, and
 * sets `window.benchResult` (ms, first chain visible, the main thread's long
 * tasks, what the tree shows). Shared by bench-browser.mjs and
 * bench-drop-ab.mjs.
 * @param {number} want
 */
export function dropTiming(want) {
  // The main thread's long tasks (over 50 ms), from the page's start.
  const longTasks = [];
  new PerformanceObserver((list) => longTasks.push(...list.getEntries())).observe({ type: 'longtask', buffered: true });
  window.addEventListener(
    'drop',
    (ev) => {
      const t0 = performance.now();
      const el = document.querySelector('backing-chain-editor');
      const tree = el.shadowRoot.querySelector('ul[role=tree]');
      // The first chain visible: the first top-level item in the tree, painted.
      let first = null;
      const seen = new MutationObserver(() => {
        if (!tree.querySelector(':scope > li[aria-level="1"]')) return;
        seen.disconnect();
        requestAnimationFrame(() => requestAnimationFrame(() => (first = performance.now() - t0)));
      });
      seen.observe(tree, { childList: true });
      let over = false;
      const check = () => {
        const top = tree.querySelectorAll(':scope > li[aria-level="1"][data-image]').length;
        if (top < want || over) return;
        over = true;
        el.removeEventListener('backing-chain-editor-diagnostics', check);
        all.disconnect();
        requestAnimationFrame(() =>
          requestAnimationFrame(() => {
            const end = performance.now();
            // Tasks that ran (in part) between the drop and now; the drop's own task began before t0.
            const during = longTasks.filter((e) => e.startTime + e.duration > t0 - 1 && e.startTime < end);
            window.benchResult = {
              ms: end - t0,
              firstMs: first ?? end - t0,
              longest: Math.max(0, ...during.map((e) => e.duration)),
              // The same counted from the page's first drop listener (the drop's
              // task begins with the browser making the drop's File objects).
              longestOurs: Math.max(0, ...during.map((e) => e.startTime + e.duration - Math.max(e.startTime, t0))),
              over100: during.filter((e) => e.duration > 100).length,
              over100Ours: during.filter((e) => e.startTime + e.duration - Math.max(e.startTime, t0) > 100).length,
              files: ev.dataTransfer?.files.length,
              chains: top,
              images: el.forest.images.length,
            };
          }),
        );
      };
      el.addEventListener('backing-chain-editor-diagnostics', check);
      // The tree adds what is below its first screenful in later tasks.
      const all = new MutationObserver(check);
      all.observe(tree, { childList: true });
    },
    { capture: true, once: true },
  );
}
// Merged with the JSON reader and the table↔tree edits: 379.4 KiB as shipped,
// first paint 256.4 KiB.
// Lowered to 344 KiB (issue 18, branch wt3-size2: 342.9 KiB measured, 379.4
// before; BENCHMARKS.md lists each step): the metadata module reads its
// `{ check }` option with Reflect and MetaWalk.info() is gone (its wasm
// 109,711 → 91,094 B gzipped); the core reads the XML options, editXml's edit
// and setMapping's pairs by hand instead of through serde-wasm-bindgen (the
// crate, serde's derived readers and float formatting out: core wasm 217,801 →
// 202,526 B gzipped); the VMDK/VHDX key=value pairs in a sorted vector (core
// −0.9, meta +0.6 KiB); a fixed message for the JSON writer's impossible
// error (serde_json's error texts out: −0.4 core, −1.3 meta).
// All merged on main (the JSON reader, the split, the bundle, wt3-size2 and the
// stateful probe, +1.1 KiB of wasm and glue): 338.6 KiB as shipped, first
// paint 234.2 KiB (core wasm 523,317 B, 201,765 B gzipped; meta wasm 223,241
// B, 90,410 B gzipped): the ceilings follow them down.
// Raised (wt4-split, written reason): the edits, Session.diff and
// Session.audit moved out of the core into the on-demand module, which now
// also holds a session of its own (probing, chain building, the XML reader:
// a copy of what the core has) so that diff and audit run there. First
// paint 234.2 → 203.6 KiB (core wasm 201,765 → 169,590 B gzipped); the
// on-demand module 90,410 → 223,676 B gzipped, so the total rises 338.6 →
// 439.5 KiB. The issue asks for first paint; the total is what a page that
// also edits or audits loads (the element fetches the second module when
// idle after first paint).
// Raised again to 442 KiB (wt4-split2, written reason): Session.diff,
// describeXml and seclabels back in the core, so that a page that shows
// data (the chains table, the tree's marked differences) never loads the
// on-demand module: core wasm 169,590 → 174,858 B gzipped, the on-demand
// one 223,676 → 220,130 B (it keeps the edits, editXml and adoptChain, the
// audit and its session; BENCHMARKS.md). 441.2 KiB measured in all, 208.8 KiB at first paint, and
// what a page showing data loads is now first paint (+ the probe worker),
// 210.7 KiB, not 439.5.
// Raised to 443 KiB (written reason): the chains table's layer form
// (editor-layer-form.js) became a file imported when a form is first opened,
// −1.5 KiB at first paint (209.3 → 207.8 KiB), +0.5 KiB in all (442.1 KiB:
// its own gzip stream and the entry's names it imports).
// Raised to 444 KiB (written reason): the details (editor-details.js with
// its combobox) became a file imported when an image is first selected,
// −1.3 KiB at first paint (207.8 → 206.5 KiB), +0.8 KiB in all (443.0 KiB).
// Lowered to 430 KiB: talc for dlmalloc, no standard sort or two-way string
// searcher in the core, two hash-table kinds fewer (429.5 KiB measured).
// Lowered to 424 KiB: the answers written by crate::json_out instead of
// serde_json, in both modules (423.6 KiB measured). 425 KiB (written
// reason): merged with the chain index's normal-name fast path (no new
// strings for names that need no folding), 424.0 KiB measured.
export const SIZE_CEILING = 425 * 1024;
/**
 * What the size test enforces for first paint. 266.5 KiB measured with the
 * wasm split in two (issue 18), ceiling 269 KiB; lowered to 241 KiB by the
 * same wt3-size2 steps (239.6 KiB measured, 256.4 before: the core wasm
 * without serde-wasm-bindgen, its glue 4,569 → 3,885 B, the pairs and the
 * JSON writer's error as said above). Lowered to 205 KiB when the edits,
 * diff and audit moved to the on-demand module (203.6 KiB measured).
 * Raised to 210 KiB (wt4-split2, written reason): the chains table's diff,
 * describeXml and seclabels back in the core (208.8 KiB measured), so that
 * a page that shows data loads first paint only, not both modules.
 * Lowered to 209 KiB when the layer form became a module imported when a
 * form is first opened (207.8 KiB measured; 209.3 with the quiet probe step
 * merged, before it). Lowered to 208 KiB when the details became a module
 * imported when an image is first selected (206.5 KiB measured). Lowered
 * to 200 KiB by talc, no standard sort, no two-way searcher and two
 * hash-table kinds fewer in the core (199.5 KiB measured). Lowered to
 * 197 KiB with the answers written by crate::json_out (196.6 KiB measured).
 * 198 KiB (written reason): VHDX probed in four rounds instead of six and
 * probeStep's chunks checked once (twice the VHDX headers/s through the
 * wasm, which missed its 10,000/s target), 0.3 KiB more in the core (197.1
 * KiB measured).
 */
export const FIRST_PAINT_CEILING = 198 * 1024;
/**
 * What a page loads to show images and a domain XML without an edit (first
 * paint and the probe worker): 210.7 KiB measured (wt4-split2); on wt4-split
 * it was every module, 439.5 KiB (the element fetched the on-demand one as
 * soon as data arrived).
 */
// Lowered to 211 KiB with the layer form on demand (209.7 KiB measured).
// Lowered to 210 KiB with the details on demand too (208.3 KiB measured).
// Lowered to 202 KiB with the first paint's steps above (201.3 KiB measured).
// Lowered to 199 KiB with the answers written by crate::json_out (198.4 KiB).
// Raised to 200 KiB (written reason): VHDX in four rounds (the core +310 B
// gzipped, twice the VHDX headers/s through the wasm) and the XML read
// path's one-pass text check merged, 199.1 KiB measured.
export const SHOWN_CEILING = 200 * 1024;
