// Size budget (issue 7, benchmark 6; issue 18): the component as it ships —
// the wasm, the wasm-bindgen glue and the element's modules minified one by
// one as the npm package ships them (`.ci/ship.mjs`), and the pages' own
// modules in www/ as written — gzipped one file at a time (as a server sends
// them) must not grow past SIZE_CEILING. First paint (what the element loads
// at start) and every file as written are printed too. The issue's target is
// 150 KiB, which is NOT met today; the figure is printed against it. Needs
// `bash .ci/build`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PKG, SIZE_BUDGET, SIZE_CEILING, gzippedSize } from './bench-support.mjs';

test('wasm + JS gzipped stay under the size ceiling (target 150 KiB not met)', (t) => {
  const wasm = join(PKG, 'backing_chain_bg.wasm');
  assert.ok(existsSync(wasm), `${wasm} is missing: run bash .ci/build first`);
  const { rows, total, first, written } = gzippedSize();
  for (const r of rows) t.diagnostic(`${r.file}: ${r.raw} B ${r.shipped}, ${r.gz} B gzipped (as written ${r.written} B)${r.first ? ', first paint' : ''}`);
  t.diagnostic(`first paint (the element's static imports, the glue, the wasm): ${first} B = ${(first / 1024).toFixed(1)} KiB gzipped`);
  t.diagnostic(`every file as written, not minified: ${written} B = ${(written / 1024).toFixed(1)} KiB gzipped`);
  t.diagnostic(`total gzipped: ${total} B = ${(total / 1024).toFixed(1)} KiB (target ${SIZE_BUDGET / 1024} KiB: ${total <= SIZE_BUDGET ? 'met' : 'NOT met'}; ceiling ${SIZE_CEILING / 1024} KiB)`);
  assert.ok(
    total <= SIZE_CEILING,
    `wasm + JS are ${(total / 1024).toFixed(1)} KiB gzipped, over the ${SIZE_CEILING / 1024} KiB ceiling: ${rows
      .map((r) => `${r.file} ${r.gz} B`)
      .join(', ')}`,
  );
});
