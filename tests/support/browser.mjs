// Launch Debian's Chromium through playwright-core (never a downloaded browser),
// and helpers for the browser tests: real file drops through CDP, qemu-img images.
import { chromium } from 'playwright-core';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ARTIFACTS = resolve(fileURLToPath(new URL('../artifacts', import.meta.url)));
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** A persistent context (fresh --user-data-dir) on /usr/bin/chromium. */
export async function launch({ viewport = { width: 1280, height: 900 }, colorScheme = 'light' } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'bce-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    colorScheme,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  await mkdir(ARTIFACTS, { recursive: true });
  return {
    context,
    async close() {
      await context.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Drop real files (absolute paths) on the element at its centre with trusted CDP drag events. */
export async function dropFiles(page, selector, paths) {
  const box = await page.locator(selector).boundingBox();
  if (!box) throw new Error(`no box for ${selector}`);
  const x = box.x + box.width / 2;
  const y = box.y + Math.min(box.height / 2, 60);
  const cdp = await page.context().newCDPSession(page);
  const data = { items: [], files: paths, dragOperationsMask: 1 };
  for (const type of ['dragEnter', 'dragOver', 'drop']) {
    await cdp.send('Input.dispatchDragEvent', { type, x, y, data });
  }
  await cdp.detach();
}

/** Run qemu-img; returns stdout. */
export function qemuImg(...args) {
  return execFileSync('qemu-img', args, { encoding: 'utf8' });
}

export function haveQemuImg() {
  try {
    execFileSync('qemu-img', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** base ← mid ← top (qcow2, backing formats recorded) in `dir`. */
export function makeChain(dir, { base = 'base.qcow2', mid = 'mid.qcow2', top = 'top.qcow2', size = '1G' } = {}) {
  qemuImg('create', '-q', '-f', 'qcow2', join(dir, base), size);
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, join(dir, mid));
  qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', mid, join(dir, top));
  return { base: join(dir, base), mid: join(dir, mid), top: join(dir, top) };
}

/** Text of the element's shadow parts. */
export async function shadowText(page, css, host = 'backing-chain-editor') {
  return page.locator(host).locator(css).allInnerTexts();
}
