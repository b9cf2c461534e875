// Size budget (issue 7, benchmark 6): the component as a page loads it — the
// wasm and every JS file under www/ (the wasm-bindgen glue in www/pkg and the
// element) — gzipped one file at a time (as a server sends them) must stay
// within 150 KiB. Needs the wasm build: `bash .ci/build`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PKG, SIZE_BUDGET, gzippedSize } from './bench-support.mjs';

test('wasm + JS gzipped stay within 150 KiB', (t) => {
  const wasm = join(PKG, 'backing_chain_bg.wasm');
  assert.ok(existsSync(wasm), `${wasm} is missing: run bash .ci/build first`);
  const { rows, total } = gzippedSize();
  for (const r of rows) t.diagnostic(`${r.file}: ${r.raw} B, ${r.gz} B gzipped`);
  t.diagnostic(`total gzipped: ${total} B = ${(total / 1024).toFixed(1)} KiB (budget ${SIZE_BUDGET / 1024} KiB)`);
  assert.ok(
    total <= SIZE_BUDGET,
    `wasm + JS are ${(total / 1024).toFixed(1)} KiB gzipped, over the ${SIZE_BUDGET / 1024} KiB budget: ${rows
      .map((r) => `${r.file} ${r.gz} B`)
      .join(', ')}`,
  );
});
