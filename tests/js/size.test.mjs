// Size budget (issue 7, benchmark 6; issue 18): the component as it ships —
// the wasm, the wasm-bindgen glue minified, the element bundled as the npm
// package ships it (`.ci/ship.mjs` bundle(): its static imports in one ES
// module, the modules it imports on demand and the probe worker each a file),
// and the pages' own modules in www/ as written — gzipped one file at a time
// (as a server sends them) must not grow past SIZE_CEILING, and first paint
// (what the element loads at start: the bundled entry, the core's glue and
// wasm; not the metadata module nor the modules imported on demand) past
// FIRST_PAINT_CEILING, and what a page loads to show images and a domain
// XML without an edit (first paint and the probe worker: the on-demand
// module waits for an edit, an audit or a walk) past SHOWN_CEILING. Every file as written is printed too. The issue's target is
// 150 KiB, which is NOT met today; the figure is printed against it. Needs
// `bash .ci/build`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FIRST_PAINT_CEILING, PKG, SHOWN_CEILING, SIZE_BUDGET, SIZE_CEILING, gzippedSize } from './bench-support.mjs';

test('wasm + JS gzipped stay under the size ceiling (target 150 KiB not met)', async (t) => {
  for (const f of ['backing_chain_bg.wasm', 'backing_chain_meta_bg.wasm']) assert.ok(existsSync(join(PKG, f)), `${join(PKG, f)} is missing: run bash .ci/build first`);
  const { rows, total, first, shown, written } = await gzippedSize();
  for (const r of rows) t.diagnostic(`${r.file}: ${r.raw} B ${r.shipped}, ${r.gz} B gzipped (as written ${r.written} B)${r.first ? ', first paint' : ''}`);
  t.diagnostic(`first paint (the element's bundle of its static imports, the core's glue and wasm): ${first} B = ${(first / 1024).toFixed(1)} KiB gzipped (ceiling ${FIRST_PAINT_CEILING / 1024} KiB)`);
  t.diagnostic(`shown (images and a domain XML, no edit: first paint and the probe worker): ${shown} B = ${(shown / 1024).toFixed(1)} KiB gzipped (ceiling ${SHOWN_CEILING / 1024} KiB)`);
  t.diagnostic(`loaded later (the metadata module, its glue, the modules imported on demand, the probe worker, the pages' own): ${total - first} B = ${((total - first) / 1024).toFixed(1)} KiB gzipped`);
  t.diagnostic(`every file as written, not minified: ${written} B = ${(written / 1024).toFixed(1)} KiB gzipped`);
  t.diagnostic(`total gzipped: ${total} B = ${(total / 1024).toFixed(1)} KiB (target ${SIZE_BUDGET / 1024} KiB: ${total <= SIZE_BUDGET ? 'met' : 'NOT met'}; ceiling ${SIZE_CEILING / 1024} KiB)`);
  assert.ok(
    total <= SIZE_CEILING,
    `wasm + JS are ${(total / 1024).toFixed(1)} KiB gzipped, over the ${SIZE_CEILING / 1024} KiB ceiling: ${rows
      .map((r) => `${r.file} ${r.gz} B`)
      .join(', ')}`,
  );
  assert.ok(first <= FIRST_PAINT_CEILING, `first paint is ${(first / 1024).toFixed(1)} KiB gzipped, over the ${FIRST_PAINT_CEILING / 1024} KiB ceiling`);
  assert.ok(shown <= SHOWN_CEILING, `a page showing data loads ${(shown / 1024).toFixed(1)} KiB gzipped, over the ${SHOWN_CEILING / 1024} KiB ceiling`);
  // Showing data is first paint and the probe worker only: no on-demand module, no on-demand view.
  assert.ok(shown > first && shown - first === rows.find((r) => r.file === 'probe-worker.js')?.gz);
  // The metadata module is not first paint; the total counts it.
  assert.equal(rows.find((r) => r.file === 'pkg/backing_chain_meta_bg.wasm')?.first, false);
  assert.equal(rows.find((r) => r.file === 'pkg/backing_chain_bg.wasm')?.first, true);
});
