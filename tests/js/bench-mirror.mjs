// Benchmark of the on-demand module's session (issue 18, run by .ci/bench;
// `node tests/js/bench-mirror.mjs [--quick]`): the element's model (www/
// editor-model.js, in Node on the web build) with 1,000 images (chains of
// the forest layout, headers made by qemu-img, read from memory), then what
// a change costs on the on-demand side: `mirror()` fills the module's session
// again whole (each image probed again from the chunks the model keeps, the
// backing choices, the core's order), timed against the core's own work for
// the same images in the same run (the probe run that read them, and one
// forest of the core). Also the chains table's view (the core's diff,
// descriptions and seclabels), for scale. Only audit() fills the session
// (wt4-split2: the chains table no longer uses it). Median of rounds.
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmtMs, forestLayout, hasQemuImg, headerOf, median, report, templates, PKG } from './bench-support.mjs';

const quick = process.argv.includes('--quick');
const N = 1000;
const ROUNDS = quick ? 3 : 9;

if (!hasQemuImg()) {
  report('on-demand session fill', 'skipped: no qemu-img', '-', null);
  process.exit(0);
}

const glue = await import(join(PKG, 'backing_chain.js'));
glue.initSync({ module: readFileSync(join(PKG, 'backing_chain_bg.wasm')) });
// editor-wasm.js fetches the on-demand module: Node's fetch has no file: URLs.
const netFetch = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  if (!String(url).startsWith('file:')) return netFetch(url, init);
  return new Response(readFileSync(new URL(String(url))), { headers: { 'content-type': 'application/wasm' } });
};
const { EditorModel } = await import(join(PKG, '..', 'editor-model.js'));

const tpl = templates(join(tmpdir(), 'bench-mirror-tpl'));
const layout = forestLayout(N);
const jobs = layout.map((e) => {
  const h = headerOf(tpl, e);
  return { name: e.name, size: h.size, reader: async (offset, len) => h.bytes.subarray(offset, Math.min(offset + len, h.bytes.length)) };
});

const m = new EditorModel({ changed: () => m.compute(), progress: () => {}, history: () => {}, restored: () => {} });
m.worker = false;
m.start();
let t0 = performance.now();
await m.probe(jobs);
const probeRun = performance.now() - t0;
await m.loadEdits();

const forest = [];
const fill = [];
const view = [];
for (let r = 0; r < ROUNDS; r++) {
  m.gen++; // a change: the next call fills the module's session again
  // The render after a change reads the core's forest (the model's
  // computeForest); the fill takes the images' order from it.
  t0 = performance.now();
  m.forest = m.s.forest();
  forest.push(performance.now() - t0);
  m.forestGen = m.gen;
  t0 = performance.now();
  m.mirror();
  fill.push(performance.now() - t0);
  t0 = performance.now();
  const v = m.chainView();
  view.push(performance.now() - t0);
  if (v.diff.length !== m.diskCount()) throw new Error(`diff of ${v.diff.length} disks, ${m.diskCount()} in the XML`);
}
const held = [...m.meta.values()].reduce((n, x) => n + (x.chunks ?? []).reduce((k, c) => k + c[1].length, 0), 0);
report(
  `on-demand session fill, ${N} images`,
  `${fmtMs(median(fill))} (the core's probe run of the same images ${fmtMs(probeRun)}, one core forest ${fmtMs(median(forest))}; the chains view after it ${fmtMs(median(view))}; chunks kept ${(held / 1024).toFixed(0)} KiB; ${ROUNDS} rounds)`,
  '-',
  null,
);
