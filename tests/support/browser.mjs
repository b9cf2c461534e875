// Launch Debian's Chromium through playwright-core (never a downloaded browser),
// and helpers for the browser tests: real file drops through CDP, qemu-img images.
import { chromium } from 'playwright-core';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
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

/**
 * A fresh page of `browser` (from `launch`) at `url` with the element ready;
 * page errors are collected in `events.errors`, the page closes with test `t`.
 * @param {{ width?: number }} [o] a viewport width (height 900)
 */
export async function openElementPage(browser, url, t, { width } = {}) {
  const page = await browser.context.newPage();
  const events = { errors: [] };
  page.on('pageerror', (e) => events.errors.push(e.message));
  t.after(() => page.close());
  if (width) await page.setViewportSize({ width, height: 900 });
  await page.goto(url);
  await page.locator('backing-chain-editor').evaluate((e) => e.ready);
  return { page, events };
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

export { qemuImg, haveQemuImg, makeChain } from './images.mjs';

/** Drop a piece of text (as dragged from another window) with CDP drag events. */
export async function dropText(page, selector, text, mimeType = 'text/plain') {
  const box = await page.locator(selector).boundingBox();
  const x = box.x + box.width / 2;
  const y = box.y + Math.min(box.height / 2, 60);
  const cdp = await page.context().newCDPSession(page);
  const data = { items: [{ mimeType, data: text }], dragOperationsMask: 1 };
  for (const type of ['dragEnter', 'dragOver', 'drop']) {
    await cdp.send('Input.dispatchDragEvent', { type, x, y, data });
  }
  await cdp.detach();
}

/** Text of the element's shadow parts. */
export async function shadowText(page, css, host = 'backing-chain-editor') {
  return page.locator(host).locator(css).allInnerTexts();
}

/**
 * Make the wasm instance of the glue module at `url` panic, from outside: no
 * test hook ships in the wasm. The glue instantiates once per copy, and its
 * initSync() hands back that instance's raw exports; the test then does what
 * the glue never does, calling a raw export that reads XML text (the core's
 * describeXml, the on-demand module's adoptChain) with bytes that are
 * not UTF-8 (a lone continuation byte, 0x80, in text). The core takes them
 * for a &str, a string slice in its XML reader panics (a real Rust panic:
 * the panic hook reports it to the page) and the instance traps.
 * @returns {Promise<string>} what the raw call threw
 */
export function corePanic(page, url) {
  return page.evaluate(async (url) => {
    const glue = await import(url);
    const raw = glue.initSync();
    const enc = new TextEncoder();
    // After 256 valid bytes: Rust's panic message quotes the first 256 bytes.
    const bytes = new Uint8Array([...enc.encode(`<domain>${'<a/>'.repeat(70)}`), 0x80, ...enc.encode('</domain>')]);
    // The glue's own steps: malloc (__wbindgen_export) and a return slot on the shadow stack.
    const pass = () => {
      const ptr = raw.__wbindgen_export(bytes.length, 1) >>> 0;
      new Uint8Array(raw.memory.buffer, ptr, bytes.length).set(bytes);
      return ptr;
    };
    const ptr = pass();
    const ret = raw.__wbindgen_add_to_stack_pointer(-16);
    try {
      // The core reads it as a document to describe; the on-demand module
      // (no describeXml) as the document whose chain adoptChain replaces.
      if (raw.describeXml) raw.describeXml(ret, ptr, bytes.length);
      else raw.adoptChain(ret, ptr, bytes.length, pass(), bytes.length, 0);
      return 'no trap';
    } catch (e) {
      return `${e.constructor.name}: ${e.message}`;
    }
  }, url);
}
