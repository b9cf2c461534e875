// Benchmarks of the wasm build in Node (run by .ci/bench; `node tests/js/bench-wasm.mjs`).
//
//  7. memory: wasm linear memory after 10,000 images probed, the forest built
//     and the XML written (target < 64 MiB). Measured first, on a fresh
//     instance: linear memory only grows.
//  1. probe through wasm: headers/s per format qemu-img can create (target,
//     derived: ≥ 10,000/s) and bytes read per format (budget in bench-support).
//  3. tree in wasm: time per image (probe + forest) at 1k and 10k images,
//     alternated, median ratio (target ≤ 1.5); a 10,000-deep chain builds and
//     writes its (flat) XML without a stack overflow.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  budgetFor, deepLayout, fmtMs, forestLayout, formatImages, hasQemuImg, headerOf, loadWasm,
  median, probeBytes, probeFile, report, templates,
} from './bench-support.mjs';

const FULL = !process.argv.includes('--quick');
const ROUNDS = FULL ? 7 : 1;
const MiB = 1 << 20;

if (!hasQemuImg()) {
  report('wasm benches', 'skipped: no qemu-img', '-', null);
  process.exit(0);
}
const wasm = await loadWasm();
const { Session, probeStep, exports } = wasm;
const memory = () => exports.memory.buffer.byteLength;
const tmp = mkdtempSync(join(tmpdir(), 'bench-wasm-'));
const tpl = templates(join(tmp, 'tpl'));

function addAll(session, layout) {
  for (const e of layout) {
    const hdr = headerOf(tpl, e);
    const r = probeBytes((size, chunks) => session.probe(`${e.dir}/${e.name}`, size, chunks), hdr);
    if (r.error) throw new Error(`${e.name}: ${r.error}`);
  }
}

try {
  // 7. Memory after 10,000 images (fresh instance).
  {
    const m0 = memory();
    const s = new Session();
    addAll(s, forestLayout(10_000));
    const m1 = memory();
    const forest = s.forest();
    const m2 = memory();
    s.xml(null, { layout: 'nested', 'base-dir': '/var/lib/libvirt/images' });
    const m3 = memory();
    s.free();
    const peak = Math.max(m1, m2, m3);
    report(
      'wasm memory after 10,000 images',
      `${(peak / MiB).toFixed(1)} MiB (start ${(m0 / MiB).toFixed(1)}, probed ${(m1 / MiB).toFixed(1)}, forest ${(m2 / MiB).toFixed(1)}, xml ${(m3 / MiB).toFixed(1)}; ${forest.chains.length} chains)`,
      '< 64 MiB',
      peak < 64 * MiB,
    );
  }

  // 1. Probe per format through wasm.
  const images = formatImages(join(tmp, 'formats'));
  for (const { label, format, path } of images) {
    let rec;
    try {
      rec = probeFile(probeStep, path);
    } catch (e) {
      report(`probe wasm ${label}`, `error: ${e.message.split('\n')[0]}`, '-', false);
      continue;
    }
    const { steps, size, bytesRead, result } = rec;
    const detected = result.info?.format ?? 'error';
    const replay = () => {
      for (const c of steps) probeStep(size, c);
    };
    let n = 1;
    for (;;) {
      const t = performance.now();
      for (let i = 0; i < n; i++) replay();
      if (performance.now() - t > 30 || n > 1e6) break;
      n *= 2;
    }
    const rates = [];
    for (let r = 0; r < ROUNDS; r++) {
      const t = performance.now();
      for (let i = 0; i < n; i++) replay();
      rates.push((n * 1000) / (performance.now() - t));
    }
    const rate = median(rates);
    const recognised = detected === format || (detected !== 'raw' && detected !== 'error' && format.startsWith(detected));
    const note = recognised ? '' : `, NOT RECOGNISED (→ ${detected})`;
    const budget = budgetFor(format);
    report(
      `probe wasm ${label}`,
      `${rate.toFixed(0)} headers/s, ${bytesRead} B read${note}`,
      `≥ 10000/s, ≤ ${budget} B`,
      rate >= 10_000 && bytesRead <= budget,
    );
  }

  // 3. Tree building in wasm: 1k vs 10k, alternated.
  for (const [label, layout] of [['forest', forestLayout], ['deep chain', deepLayout]]) {
    const small = layout(1_000);
    const large = layout(10_000);
    const time = (l) => {
      const s = new Session();
      const t = performance.now();
      addAll(s, l);
      const f = s.forest();
      const ms = performance.now() - t;
      s.free();
      if (!f.chains.length) throw new Error('no chains');
      return ms / l.length;
    };
    const ratios = [];
    const ts = [];
    const tl = [];
    for (let r = 0; r < ROUNDS; r++) {
      let a, b;
      if (r % 2 === 0) {
        a = time(small);
        b = time(large);
      } else {
        b = time(large);
        a = time(small);
      }
      ts.push(a);
      tl.push(b);
      ratios.push(b / a);
    }
    const ratio = median(ratios);
    report(
      `tree wasm ${label} 1k → 10k (probe + forest)`,
      `${fmtMs(median(ts))} / image at 1k, ${fmtMs(median(tl))} at 10k: ratio ${ratio.toFixed(2)}`,
      '≤ 1.5 (linear ≈ 1)',
      ratio <= 1.5,
    );
  }
  {
    const s = new Session();
    let ok = false;
    let why = '';
    try {
      addAll(s, deepLayout(10_000));
      const f = s.forest();
      // Flat: the nested layout stops at 240 layers (limits::MAX_NESTED_CHAIN).
      const { xml } = s.xml(null, { layout: 'flat', 'base-dir': '/images' });
      const depth = f.chains[0]?.layers.length;
      const flatOk = (xml.match(/<backingStore type=/g) ?? []).length === 9_999;
      ok = depth === 10_000 && flatOk;
      why = `chain of ${depth}, flat XML ${flatOk ? 'complete' : 'INCOMPLETE'}`;
    } catch (e) {
      why = `trapped: ${e.message}`;
    }
    report('tree wasm 10,000-deep chain', why, 'no stack overflow', ok);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
