// Benchmark of issue 17 through the wasm build in Node (run by .ci/bench;
// `node tests/js/bench-meta.mjs [--quick]`): allocation + map of a 100 GiB
// qcow2 with half of its clusters allocated (preallocation=metadata for 50
// GiB, then grown to 100 GiB), read with positioned reads as the page reads
// Blob slices. Figures: time (median of rounds) and bytes read against the
// virtual size. Targets: < 1 s, < 0.1 %. (The same walk in headless
// Chromium is not measured yet.)
import { mkdtempSync, rmSync, openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmtMs, hasQemuImg, loadWasm, median, qemuImg, report } from './bench-support.mjs';

const FULL = !process.argv.includes('--quick');
const ROUNDS = FULL ? 7 : 1;

if (!hasQemuImg()) {
  report('meta (wasm)', 'skipped: no qemu-img', '-', null);
  process.exit(0);
}
const { MetaWalk, MetaChain } = await loadWasm();
const dir = mkdtempSync(join(tmpdir(), 'bench-meta-'));
try {
  qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'preallocation=metadata', 'big.qcow2', '50G'], dir);
  qemuImg(['resize', '-q', 'big.qcow2', '100G'], dir);
  const path = join(dir, 'big.qcow2');
  const fd = openSync(path, 'r');
  const size = fstatSync(fd).size;
  const walkOnce = () => {
    const w = new MetaWalk(size);
    let chunks = [];
    const header = [];
    let bytes = 0;
    for (;;) {
      const r = w.step(chunks);
      if (r.layer) {
        const chain = new MetaChain();
        chain.push(w);
        const out = chain.result();
        chain.free();
        w.free();
        return { bytes, layer: r.layer, out };
      }
      const fresh = r.need.map(({ offset, len }) => {
        const buf = Buffer.alloc(len);
        const got = readSync(fd, buf, 0, len, offset);
        bytes += got;
        return [offset, new Uint8Array(buf.buffer, buf.byteOffset, got), len];
      });
      if (w.info() === null) {
        header.push(...fresh);
        chunks = header;
      } else {
        chunks = fresh;
      }
    }
  };
  const first = walkOnce();
  if (first.layer.allocation.data !== 50 * 2 ** 30) throw new Error(`allocation: ${JSON.stringify(first.layer.allocation)}`);
  const times = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t = performance.now();
    walkOnce();
    times.push(performance.now() - t);
  }
  closeSync(fd);
  const ms = median(times);
  const pct = (first.bytes * 100) / (100 * 2 ** 30);
  report(
    'meta: allocation + map of a 100 GiB qcow2 (50 % allocated), wasm in Node',
    `${fmtMs(ms)} ; read ${(first.bytes / 2 ** 20).toFixed(2)} MiB = ${pct.toFixed(4)} % of the virtual size`,
    '< 1 s, < 0.1 %',
    ms < 1000 && pct < 0.1,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
