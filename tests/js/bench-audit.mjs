// Benchmark 8b (run by .ci/bench; `node tests/js/bench-audit.mjs`): the audit
// page's picture in headless Chromium against the tree view of the same drop.
//
// 1,000 qcow2 images (groups of ten sharing bases, as in bench-browser.mjs)
// and one XML file holding 100 domains (each with two disks: a group's chain
// top and one of its overlays) are dropped with trusted CDP drag events on
// www/audit.html; timed in the page from the drop event (a capture listener
// on window) to the picture holding a node for every image, after two
// animation frames. Each round also drops the same 1,000 images on the main
// page's <backing-chain-editor> and times drop → every chain in its tree
// (as bench-browser.mjs does); the rounds alternate, a fresh page each, and
// the figure is the median of the per-round ratios audit / tree (target ≤ 1.5).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer } from '../support/server.mjs';
import { dropFiles } from '../support/browser.mjs';
import { ROOT, fmtMs, forestLayout, hasQemuImg, makeLayout, median, report } from './bench-support.mjs';

const FULL = !process.argv.includes('--quick');
const ROUNDS = FULL ? 5 : 1;
const N = 1_000;
const VMS = 100;
const MAX_RATIO = 1.5;

if (!hasQemuImg()) {
  report('audit page picture', 'skipped: no qemu-img', '-', null);
  process.exit(0);
}

const cache = join(ROOT, 'target/bench-images');
const layout = forestLayout(N);
const paths = await makeLayout(join(cache, `drop-${N}`), layout);
const tops = layout.filter((e) => !layout.some((o) => o.backing === e.name)).length;
const name = (g, k) => `g${String(g).padStart(6, '0')}-${k}.qcow2`;
let xml = '';
for (let v = 0; v < VMS; v++) {
  const disk = (dev, file) =>
    `    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='/var/lib/libvirt/images/${file}'/>\n      <target dev='${dev}' bus='virtio'/>\n    </disk>\n`;
  xml += `<domain type='kvm'>\n  <name>vm${v}</name>\n  <devices>\n${disk('vda', name(2 * v, 4))}${disk('vdb', name(2 * v + 1, 5))}  </devices>\n</domain>\n`;
}
const xmlDir = mkdtempSync(join(tmpdir(), 'bench-audit-'));
const xmlPath = join(xmlDir, 'domains.xml');
writeFileSync(xmlPath, xml);

const server = await startServer();
const profile = mkdtempSync(join(tmpdir(), 'bench-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const origin = `http://127.0.0.1:${server.address().port}`;

/** drop → the view shows `want` items (`mode`: 'tree' or 'audit'), two animation frames; ms. */
async function timed(url, selector, files, mode, want) {
  const tab = await context.newPage();
  const errs = [];
  tab.on('pageerror', (e) => errs.push(e.message));
  await tab.addInitScript(
    ([mode, want]) => {
      const done = () => {
        if (mode === 'audit') return document.querySelectorAll('.audit-graph .node.image').length >= want;
        const tree = document.querySelector('backing-chain-editor')?.shadowRoot?.querySelector('ul[role=tree]');
        return !!tree && tree.querySelectorAll(':scope > li[aria-level="1"][data-image]').length >= want;
      };
      window.addEventListener(
        'drop',
        () => {
          const t0 = performance.now();
          const poll = () => {
            if (!done()) return requestAnimationFrame(poll);
            requestAnimationFrame(() => requestAnimationFrame(() => (window.benchResult = { ms: performance.now() - t0 })));
          };
          requestAnimationFrame(poll);
        },
        { capture: true, once: true },
      );
    },
    [mode, want],
  );
  await tab.goto(url);
  if (mode === 'tree') await tab.locator('backing-chain-editor').evaluate((e) => e.ready);
  else await tab.waitForFunction(() => !document.getElementById('boot'));
  await dropFiles(tab, selector, files);
  await tab.waitForFunction(() => window.benchResult, null, { timeout: 300_000 });
  const got = await tab.evaluate(() => window.benchResult);
  await tab.close();
  if (errs.length) throw new Error(`page errors: ${errs.join('; ')}`);
  return got.ms;
}

try {
  const tree = [];
  const audit = [];
  const ratios = [];
  for (let r = 0; r < ROUNDS; r++) {
    let t, a;
    if (r % 2 === 0) {
      t = await timed(`${origin}/`, 'backing-chain-editor', paths, 'tree', tops);
      a = await timed(`${origin}/audit.html`, '#audit-drop', [...paths, xmlPath], 'audit', N);
    } else {
      a = await timed(`${origin}/audit.html`, '#audit-drop', [...paths, xmlPath], 'audit', N);
      t = await timed(`${origin}/`, 'backing-chain-editor', paths, 'tree', tops);
    }
    tree.push(t);
    audit.push(a);
    ratios.push(a / t);
  }
  const ratio = median(ratios);
  report(
    `audit page picture, ${N} images + ${VMS} VMs vs the tree view`,
    `ratio ${ratio.toFixed(2)} (picture ${fmtMs(median(audit))}, tree ${fmtMs(median(tree))}; ${ROUNDS} rounds)`,
    `≤ ${MAX_RATIO}`,
    ratio <= MAX_RATIO,
  );
} finally {
  await context.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
  rmSync(xmlDir, { recursive: true, force: true });
}
