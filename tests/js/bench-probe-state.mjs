// The stateful probe against the stateless loop, through the wasm build in
// Node (issue 18; `node tests/js/bench-probe-state.mjs [--quick] [--base DIR]`).
//
// For images whose probe takes several rounds (bench-support
// multiRoundImages: vhdx, raw, fixed VPC, qcow2 with a bitmap or LUKS, a VMDK
// descriptor over 4 KiB) and a few of one round: the bytes copied into the
// wasm per image, and the time per probe, with the chunks already in memory
// (the reads are the same either way and not timed):
//   worker: `probeStep(size, every chunk so far)` per round (what the probe
//           worker ran) against a `Probe` given each round's new chunks;
//   page:   `Session.probe(name, size, every chunk so far)` per round (the
//           page-thread path: hosts' readers) against `Session.newProbe`,
//           `step` and `addProbe`.
// And each against its quiet form (`Probe.stepQuiet`, `Session.probeQuiet`:
// a finished probe answers `{ done: true }`, its facts not written), what
// the worker and the page run for a dropped file.
// Alternated in one run (ABAB…), median of the per-round ratios. `--base
// DIR`: also time the probeStep loop of another build's www/pkg (main's),
// loaded beside this one: what the worker ran before, against a Probe.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmtMs, hasQemuImg, loadWasm, median, multiRoundImages, recordProbe, report } from './bench-support.mjs';

const FULL = !process.argv.includes('--quick');
const ROUNDS = FULL ? 9 : 3;
const baseAt = process.argv.indexOf('--base');
const BASE = baseAt > 0 ? process.argv[baseAt + 1] : null;

if (!hasQemuImg()) {
  report('probe state benches', 'skipped: no qemu-img', '-', null);
  process.exit(0);
}
const { probeStep, Probe, Session } = await loadWasm();
let baseStep = null;
if (BASE) {
  const glue = await import(join(BASE, 'backing_chain.js'));
  glue.initSync({ module: readFileSync(join(BASE, 'backing_chain_bg.wasm')) });
  baseStep = glue.probeStep;
}

/** Call `fn` n times, n doubled until a call of the batch takes ≥ 30 ms; returns n. */
function calibrate(fn) {
  let n = 1;
  for (;;) {
    const t = performance.now();
    for (let i = 0; i < n; i++) fn();
    if (performance.now() - t > 30 || n > 1e6) return n;
    n *= 2;
  }
}

/** µs per call of each of `fns`, alternated in `ROUNDS` rounds (the order
 *  flips each round): medians, and `ratio(a, b)` the median of the
 *  per-round ratios fns[a] / fns[b]. */
function alternate(fns) {
  const ns = fns.map(calibrate);
  /** @type {number[][]} per round, µs per call of each */
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order = fns.map((_, k) => k);
    if (r % 2) order.reverse();
    const t = [];
    for (const k of order) {
      const start = performance.now();
      for (let i = 0; i < ns[k]; i++) fns[k]();
      t[k] = ((performance.now() - start) * 1000) / ns[k];
    }
    rounds.push(t);
  }
  return {
    times: fns.map((_, k) => median(rounds.map((t) => t[k]))),
    ratio: (a, b) => median(rounds.map((t) => t[a] / t[b])),
  };
}

const tmp = mkdtempSync(join(tmpdir(), 'bench-probe-state-'));
try {
  for (const { label, path } of multiRoundImages(join(tmp, 'img'))) {
    const step = (size, chunks) => {
      try {
        return probeStep(size, chunks);
      } catch (e) {
        return { error: e.message };
      }
    };
    const { rounds, size } = recordProbe(step, path);
    const bytes = (cs) => cs.reduce((n, c) => n + c[1].length, 0);
    // What crosses into the wasm: every chunk so far at each call, or each chunk once.
    const cumulative = [[]];
    for (const r of rounds) cumulative.push([...cumulative.at(-1), ...r]);
    const copiedOld = cumulative.reduce((n, cs) => n + bytes(cs), 0);
    const copiedNew = bytes(cumulative.at(-1));
    const calls = [[], ...rounds];

    const stateless = (fn) => () => {
      for (const cs of cumulative) {
        try {
          fn(size, cs);
        } catch {
          /* a bad header throws: the loop's answer */
        }
      }
    };
    const stateful = () => {
      const p = new Probe(size);
      for (const cs of calls) p.step(cs);
      p.free();
    };
    const s1 = new Session();
    const s2 = new Session();
    let k1 = 0;
    let k2 = 0;
    const pageOld = () => {
      for (const cs of cumulative) s1.probe('img', size, cs);
      if (++k1 % 256 === 0) s1.clear();
    };
    const pageNew = () => {
      const p = s2.newProbe(size);
      for (const cs of calls) p.step(cs);
      s2.addProbe('img', p);
      if (++k2 % 256 === 0) s2.clear();
    };
    // The same without the facts written at the end (`stepQuiet`,
    // `probeQuiet`: what the worker and the page run for a dropped file).
    const statefulQuiet = () => {
      const p = new Probe(size);
      for (const cs of calls) p.stepQuiet(cs);
      p.free();
    };
    const s3 = new Session();
    let k3 = 0;
    const pageQuiet = () => {
      for (const cs of cumulative) s3.probeQuiet('img', size, cs);
      if (++k3 % 256 === 0) s3.clear();
    };
    const fns = [stateless(probeStep), stateful, pageOld, pageNew, statefulQuiet, pageQuiet];
    if (baseStep) fns.push(stateless(baseStep));
    const { times, ratio } = alternate(fns);
    s1.free();
    s2.free();
    s3.free();
    const quiet = `; without the facts: a Probe ${fmtMs(times[1] / 1000)} → stepQuiet ${fmtMs(times[4] / 1000)} (${ratio(4, 1).toFixed(2)}×), Session.probe ${fmtMs(times[2] / 1000)} → probeQuiet ${fmtMs(times[5] / 1000)} (${ratio(5, 2).toFixed(2)}×)`;
    const base = baseStep ? `; main's probeStep loop ${fmtMs(times[6] / 1000)} (${ratio(6, 0).toFixed(2)}× this build's): a Probe ${ratio(1, 6).toFixed(2)}× of it` : '';
    report(
      `probe state ${label}`,
      `${rounds.length} round(s): bytes into the wasm ${copiedOld} → ${copiedNew} (${(copiedNew / copiedOld).toFixed(2)}×); worker loop ${fmtMs(times[0] / 1000)} → ${fmtMs(times[1] / 1000)} (${ratio(1, 0).toFixed(2)}×); page loop ${fmtMs(times[2] / 1000)} → ${fmtMs(times[3] / 1000)} (${ratio(3, 2).toFixed(2)}×)${quiet}${base}`,
      'each chunk once (time: reported)',
      copiedNew <= copiedOld,
    );
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
