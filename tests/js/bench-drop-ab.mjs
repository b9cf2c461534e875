// Variants of the page dropped alternately in one run (BENCHMARKS.md, issue
// 18: how each step of the drop was measured on a loaded 2-core machine):
//
//   node tests/js/bench-drop-ab.mjs ROUNDS LABEL=WWW_DIR[@PATCH[+PATCH]] ...
//
// Each LABEL serves WWW_DIR (a www/ with its pkg/, e.g. another worktree's)
// with the named PATCHES applied to what it serves (one constant changed,
// below). Every round drops the same 1,000 qcow2 images (bench-browser's
// layout and cache) on a fresh tab of each variant, in an order that flips
// each round, and times it as bench-browser does (`dropTiming`: the page's
// first drop listener → every chain's top in the tree, two frames). Prints
// per variant the median time, the median of its per-round ratio to the
// first variant, the first chain visible and the longest task from the
// page's first drop listener. HOVER=ms drags the files over the element for
// that long before the drop (a user's drag; the default sends the drag
// events back to back).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer } from '../support/server.mjs';
import { dropFiles } from '../support/browser.mjs';
import { ROOT, dropTiming, fmtMs, forestLayout, hasQemuImg, makeLayout, median } from './bench-support.mjs';

/** name → [served path, text in it, replacement]: one constant each. */
const PATCHES = {
  span0: ['/reader.js', 'export const COALESCE_SPAN = 64 * 1024;', 'export const COALESCE_SPAN = 0;'],
  nosplit: ['/backing-chain-editor.js', 'const SPLIT_RENDER_AT = MANY_IMAGES;', 'const SPLIT_RENDER_AT = Infinity;'],
  nobatch: ['/probe-worker.js', 'const reader = batchedBlobReads();', 'const reader = batchedBlobReads(1);'],
  batch8: ['/probe-worker.js', 'const reader = batchedBlobReads();', 'const reader = batchedBlobReads(8);'],
  nowarm: ['/backing-chain-editor.js', '  _warm() {', '  _warm() {\n    return;'],
  noworker: ['/reader.js', "if (!module || !url || refused || typeof Worker !== 'function') return null;", 'return null;'],
  group16: ['/reader.js', 'const GROUP = 64;', 'const GROUP = 16;'],
  group256: ['/reader.js', 'const GROUP = 64;', 'const GROUP = 256;'],
  group1000: ['/reader.js', 'const GROUP = 64;', 'const GROUP = 1000;'],
};

const N = 1_000;
const [rounds, ...specs] = process.argv.slice(2);
if (!Number(rounds) || !specs.length) {
  console.error(`usage: node tests/js/bench-drop-ab.mjs ROUNDS LABEL=WWW_DIR[@PATCH[+PATCH]] ...  (patches: ${Object.keys(PATCHES).join(', ')})`);
  process.exit(2);
}
if (!hasQemuImg()) {
  console.log('skipped: no qemu-img');
  process.exit(0);
}
const layout = forestLayout(N);
const tops = layout.filter((e) => !layout.some((o) => o.backing === e.name)).length;
const paths = await makeLayout(join(ROOT, 'target/bench-images', `drop-${N}`), layout);

const variants = [];
for (const spec of specs) {
  const [label, where] = spec.split('=');
  const [dir, patches = ''] = where.split('@');
  const root = resolve(dir);
  const todo = patches.split('+').filter(Boolean).map((p) => {
    if (!PATCHES[p]) throw new Error(`no patch ${p}`);
    return PATCHES[p];
  });
  const handle = async (_req, res, url) => {
    const mine = todo.filter(([path]) => path === url.pathname);
    if (!mine.length) return false;
    let text = readFileSync(join(root, url.pathname), 'utf8');
    for (const [, from, to] of mine) {
      if (!text.includes(from)) throw new Error(`${label}: ${url.pathname} has no ${JSON.stringify(from)}`);
      text = text.replace(from, to);
    }
    res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(text);
    return true;
  };
  const server = await startServer({ root, handle });
  variants.push({ label, server, origin: `http://127.0.0.1:${server.address().port}`, runs: [] });
}

const profile = mkdtempSync(join(tmpdir(), 'bench-ab-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const hover = Number(process.env.HOVER ?? 0);

async function dropOn(origin) {
  const tab = await context.newPage();
  const errors = [];
  tab.on('pageerror', (e) => errors.push(e.message));
  await tab.addInitScript(dropTiming, tops);
  await tab.goto(`${origin}/`);
  await tab.locator('backing-chain-editor').evaluate((e) => e.ready);
  if (hover) {
    const box = await tab.locator('backing-chain-editor').boundingBox();
    const at = { x: box.x + box.width / 2, y: box.y + Math.min(box.height / 2, 60) };
    const cdp = await context.newCDPSession(tab);
    const data = { items: [], files: paths, dragOperationsMask: 1 };
    await cdp.send('Input.dispatchDragEvent', { type: 'dragEnter', ...at, data });
    for (let i = 0; i < 6; i++) {
      await cdp.send('Input.dispatchDragEvent', { type: 'dragOver', ...at, data });
      await new Promise((ok) => setTimeout(ok, hover / 6));
    }
    await cdp.send('Input.dispatchDragEvent', { type: 'drop', ...at, data });
    await cdp.detach();
  } else {
    await dropFiles(tab, 'backing-chain-editor', paths);
  }
  await tab.waitForFunction(() => window.benchResult, null, { timeout: 120_000 });
  const got = await tab.evaluate(() => window.benchResult);
  await tab.close();
  if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  if (got.chains !== tops || got.images !== N) throw new Error(`${got.chains} chains of ${got.images} images shown`);
  return got;
}

try {
  for (let r = 0; r < Number(rounds); r++) {
    for (const v of r % 2 ? [...variants].reverse() : variants) v.runs.push(await dropOn(v.origin));
  }
  const [first] = variants;
  for (const v of variants) {
    const ms = v.runs.map((x) => x.ms);
    console.log(
      [
        v.label,
        `${fmtMs(median(ms))}`,
        `${median(ms.map((x, i) => x / first.runs[i].ms)).toFixed(2)}× ${first.label}`,
        `first chain ${fmtMs(median(v.runs.map((x) => x.firstMs)))}`,
        `longest task from the first drop listener ${fmtMs(median(v.runs.map((x) => x.longestOurs)))} (overall ${fmtMs(median(v.runs.map((x) => x.longest)))})`,
        `rounds ${ms.map((x) => x.toFixed(0)).join(', ')} ms`,
      ].join('\t'),
    );
  }
} finally {
  await context.close();
  for (const v of variants) v.server.close();
  rmSync(profile, { recursive: true, force: true });
}
