// The npm package as a console would use it: `node .ci/pack.mjs` makes the
// tarball, a fresh project installs it offline, and three consumer pages load
// the element under a strict Content-Security-Policy in Chromium — an esbuild
// ES-module bundle, an esbuild classic (IIFE) bundle that passes
// register({ wasmUrl, metaWasmUrl }), and plain ES modules through an import
// map — and a drop of a qemu-img chain shows that chain; allocation() then
// loads the second wasm module (the metadata walks, issue 18) and gives
// qemu-img map's figures.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../support/server.mjs';
import { launch, dropFiles, corePanic, ARTIFACTS } from '../support/browser.mjs';
import { haveQemuImg, haveTool, layerOracle, makeChain, qemuImg } from '../support/images.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const skip = haveQemuImg() ? false : 'qemu-img is not installed';
const CSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; connect-src 'self'; img-src 'self' data:";

let dir;
let project;
let tarball;
let browser;
let server;
let origin;
let chain;
let importMapHash;

/** Every file under `d`, relative. @param {string} d @param {string} [pre] @returns {string[]} */
function walk(d, pre = '') {
  return readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name), `${pre}${e.name}/`) : [`${pre}${e.name}`]));
}

const CONSUMER = `
import { register } from 'backing-chain-editor';
import wasmUrl from 'backing-chain-editor/backing_chain_bg.wasm';
import metaWasmUrl from 'backing-chain-editor/backing_chain_meta_bg.wasm';
register({ wasmUrl, metaWasmUrl });
`;

const IMPORT_MAP = JSON.stringify({ imports: { 'backing-chain-editor': '/node_modules/backing-chain-editor/backing-chain-editor.js' } });

function page(title, head) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<link rel="icon" href="data:,">
${head}
</head><body>
<h1>${title}</h1>
<backing-chain-editor></backing-chain-editor>
</body></html>`;
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'bce-package-'));
  tarball = execFileSync('node', [join(ROOT, '.ci', 'pack.mjs'), join(dir, 'out')], { encoding: 'utf8' }).trim();
  project = join(dir, 'consumer');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
  // Offline, from the tarball alone: the package has no dependencies.
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], { cwd: project, stdio: 'pipe' });
  mkdirSync(join(project, 'src'));
  writeFileSync(join(project, 'src', 'app.js'), CONSUMER);
  writeFileSync(join(project, 'src', 'map.js'), "import { register } from 'backing-chain-editor';\nregister();\n");
  // esbuild, the bundler cockpit-machines uses, run from the consumer's directory.
  const esbuild = await import('esbuild');
  for (const format of ['esm', 'iife']) {
    await esbuild.build({
      absWorkingDir: project,
      entryPoints: ['src/app.js'],
      bundle: true,
      format,
      outdir: `dist-${format}`,
      loader: { '.wasm': 'file' },
      assetNames: '[name]-[hash]',
      // The .wasm's URL as the page will fetch it (esbuild's file loader).
      publicPath: `/dist-${format}`,
      logLevel: 'silent',
    });
  }
  importMapHash = createHash('sha256').update(IMPORT_MAP).digest('base64');
  writeFileSync(join(project, 'esm.html'), page('ES module bundle', '<script type="module" src="/dist-esm/app.js"></script>'));
  writeFileSync(join(project, 'iife.html'), page('classic bundle', '<script src="/dist-iife/app.js"></script>'));
  writeFileSync(join(project, 'map.html'), page('import map', `<script type="importmap">${IMPORT_MAP}</script>\n<script type="module" src="/src/map.js"></script>`));
  const imgs = join(dir, 'images');
  mkdirSync(imgs);
  chain = makeChain(imgs);
  // Data in the base and the top, for the allocation figures (qemu-io writes them).
  if (haveTool('qemu-io')) {
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x11 0 4M', chain.base], { stdio: 'ignore' });
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x22 8M 1M', '-c', 'write -z 16M 64k', chain.top], { stdio: 'ignore' });
  }
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});


/** @param {{ data: number, compressed: number, zero: number, unallocated: number }} a */
const pick = ({ data, compressed, zero, unallocated }) => ({ data, compressed, zero, unallocated });

/** Serve the consumer project with the CSP; the import map page adds its map's hash. */
async function serveProject() {
  if (origin) return origin;
  server = await startServer({
    root: project,
    handle: (req, res, url) => {
      if (url.pathname !== '/map.html') return false;
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-security-policy': CSP.replace("script-src 'self'", `script-src 'self' 'sha256-${importMapHash}'`),
      });
      res.end(readFileSync(join(project, 'map.html')));
      return true;
    },
    headers: { 'content-security-policy': CSP },
  });
  origin = `http://127.0.0.1:${server.address().port}`;
  return origin;
}

test('the tarball holds the element, its modules, types, the wasm API and the .wasm, and nothing of this repository', { skip }, () => {
  const pkgDir = join(project, 'node_modules', 'backing-chain-editor');
  const files = walk(pkgDir).sort();
  for (const f of ['package.json', 'README.md', 'LICENSE-MIT', 'LICENSE-APACHE', 'backing-chain-editor.js', 'backing-chain-editor.d.ts',
    'backing-chain-wasm.d.ts', 'probe-worker.js', 'pkg/backing_chain.js', 'pkg/backing_chain_bg.wasm',
    // The metadata walks, loaded on first use (issue 18): their modules, glue, .wasm and types.
    'editor-meta.js', 'editor-alloc.js', 'pkg/backing_chain_meta.js', 'pkg/backing_chain_meta_bg.wasm', 'backing-chain-wasm-meta.d.ts',
    // The chains table's layer form, imported when a form is first opened; the details, when an image is first selected.
    'editor-layer-form.js', 'editor-details.js']) {
    assert.ok(files.includes(f), `${f} is in the package`);
  }
  // The element ships bundled (issue 18): its static imports are in
  // backing-chain-editor.js; only the on-demand modules, the worker and the
  // glues are files of their own.
  assert.deepEqual(files.filter((f) => f.endsWith('.js')), ['backing-chain-editor.js', 'editor-alloc.js', 'editor-details.js', 'editor-layer-form.js', 'editor-meta.js', 'pkg/backing_chain.js', 'pkg/backing_chain_meta.js', 'probe-worker.js']);
  // Only what the element loads: not the demo page, not the Cockpit example, no tests.
  for (const f of files) assert.doesNotMatch(f, /^(index\.html|app\.js|page\.css|cockpit\/|docs\/|tests?\/|src\/)/, f);
  // Every relative import of a packaged module resolves inside the package.
  for (const f of files.filter((x) => x.endsWith('.js'))) {
    const text = readFileSync(join(pkgDir, f), 'utf8');
    for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*)['"](\.{1,2}\/[^'"?]+)/g)) {
      assert.ok(existsSync(join(pkgDir, dirname(f), m[1])), `${f} imports ${m[1]}, which is in the package`);
    }
    // Nothing names this repository's layout or tools (a message must make sense to an embedder).
    assert.doesNotMatch(text, /\.ci\/|\bwww\/|\btests\/|src\/\w+\.rs|npm start|cargo /, `${f} refers to the repository`);
  }
  const meta = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  assert.equal(meta.private, undefined);
  assert.equal(meta.version, readFileSync(join(ROOT, 'Cargo.toml'), 'utf8').match(/^version\s*=\s*"([^"]+)"/m)[1]);
  assert.equal(meta.types, './backing-chain-editor.d.ts');
  for (const [k, v] of Object.entries(meta.exports)) {
    for (const target of typeof v === 'string' ? [v] : Object.values(v)) assert.ok(existsSync(join(pkgDir, target)), `exports[${k}] → ${target} exists`);
  }
  assert.ok(Array.isArray(meta.sideEffects));
  // The README is for embedders: no path into this repository.
  assert.doesNotMatch(readFileSync(join(pkgDir, 'README.md'), 'utf8'), /\.ci\/|\bwww\/|tests\/js/);
});

// A bundle has no probe-worker.js beside its code (the page's thread probes:
// no request for it, no error); plain modules start the worker from 'self',
// which the strict CSP allows (worker-src falls back to script-src).
for (const [name, path, wasmFrom, worker, metaFrom] of [
  ['an esbuild ES-module bundle', '/esm.html', /\/dist-esm\/backing_chain_bg-\w+\.wasm$/, false, /\/dist-esm\/backing_chain_meta_bg-\w+\.wasm$/],
  ['an esbuild classic (IIFE) bundle with register({ wasmUrl, metaWasmUrl })', '/iife.html', /\/dist-iife\/backing_chain_bg-\w+\.wasm$/, false, /\/dist-iife\/backing_chain_meta_bg-\w+\.wasm$/],
  ['plain ES modules through an import map, no bundler', '/map.html', /\/node_modules\/backing-chain-editor\/pkg\/backing_chain_bg\.wasm$/, true, /\/node_modules\/backing-chain-editor\/pkg\/backing_chain_meta_bg\.wasm$/],
]) {
  test(`${name}: under script-src 'self' 'wasm-unsafe-eval' a drop shows the chain (probed ${worker ? 'in the probe worker' : "on the page's thread"})`, { skip }, async (t) => {
    const base = await serveProject();
    const p = await browser.context.newPage();
    t.after(() => p.close());
    const errors = [];
    const requests = [];
    p.on('pageerror', (e) => errors.push(String(e)));
    p.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    p.on('request', (r) => requests.push(r.url()));
    const workers = [];
    p.on('worker', (w) => workers.push(new URL(w.url()).pathname));
    p.on('response', (r) => { if (r.status() >= 400) errors.push(`${r.status()} ${r.url()}`); });
    await p.goto(base + path);
    await p.locator('backing-chain-editor').evaluate((e) => /** @type {any} */ (e).ready);
    // Until the element is ready, the import-map page fetches the page, its
    // script, the element (one file), the core's glue and its .wasm, in that
    // order, and nothing else (the on-demand module waits for an edit, an
    // audit or a walk).
    if (path === '/map.html') {
      const paths = requests.map((u) => new URL(u).pathname);
      assert.deepEqual(paths, ['/map.html', '/src/map.js', '/node_modules/backing-chain-editor/backing-chain-editor.js', '/node_modules/backing-chain-editor/pkg/backing_chain.js', '/node_modules/backing-chain-editor/pkg/backing_chain_bg.wasm']);
    }
    await dropFiles(p, 'backing-chain-editor', [chain.top, chain.mid, chain.base]);
    await p.waitForFunction(() => {
      const f = /** @type {any} */ (document.querySelector('backing-chain-editor')).forest;
      return f && f.chains.length === 1 && f.chains[0].layers.length === 3;
    });
    const forest = await p.locator('backing-chain-editor').evaluate((e) => /** @type {any} */ (e).forest);
    assert.deepEqual(forest.chains[0].layers.map((i) => forest.images[i].filename), ['top.qcow2', 'mid.qcow2', 'base.qcow2']);
    assert.equal(forest.chains[0].status, 'ok');
    // The tree the user sees names all three.
    const tree = (await p.locator('backing-chain-editor').locator('[role=tree]').allInnerTexts()).join('\n');
    for (const n of ['top.qcow2', 'mid.qcow2', 'base.qcow2']) assert.ok(tree.includes(n), `${n} in the tree`);
    const xml = await p.locator('backing-chain-editor').evaluate((e) => /** @type {any} */ (e).getXml({ layout: 'nested' }));
    assert.match(xml, /<source file='[^']*top\.qcow2'[^>]*\/>[\s\S]*<backingStore type='file'[^>]*>[\s\S]*mid\.qcow2[\s\S]*base\.qcow2/);
    // The wasm came from where the consumer put it; nothing left the origin.
    assert.ok(requests.some((u) => wasmFrom.test(new URL(u).pathname)), `the .wasm was fetched from ${wasmFrom}: ${requests.join(' ')}`);
    assert.deepEqual(requests.filter((u) => !u.startsWith(base)), []);
    assert.deepEqual(workers, worker ? ['/node_modules/backing-chain-editor/probe-worker.js'] : []);
    if (!worker) assert.ok(!requests.some((u) => u.includes('probe-worker')), 'a bundle does not ask for the worker');
    // Images shown, no edit: the on-demand module was not fetched. The first
    // allocation() fetches it, from where the consumer put it, once.
    assert.deepEqual(requests.filter((u) => /backing_chain_meta/.test(u)), []);
    const got = await p.locator('backing-chain-editor').evaluate(async (e) => {
      const el = /** @type {any} */ (e);
      const layers = [];
      for (const n of ['top.qcow2', 'mid.qcow2', 'base.qcow2']) layers.push((await el.allocation(n)).allocation);
      return { layers, map: (await el.chainMap('top.qcow2')).map };
    });
    assert.deepEqual(got.map, JSON.parse(qemuImg('map', '--output=json', chain.top)));
    for (const [i, f] of [chain.top, chain.mid, chain.base].entries()) assert.deepEqual(pick(got.layers[i]), layerOracle(f), f);
    assert.ok(got.layers[2].data > 0 || !haveTool('qemu-io'), 'the base holds data');
    assert.equal(requests.filter((u) => metaFrom.test(new URL(u).pathname)).length, 1, `the metadata .wasm was fetched once from ${metaFrom}: ${requests.join(' ')}`);
    assert.deepEqual(requests.filter((u) => !u.startsWith(base)), []);
    await p.screenshot({ path: join(ARTIFACTS, `package${path.replace(/\W+/g, '-')}.png`) });
    assert.deepEqual(errors, []);
  });
}

// Issue 18: the bundled element still finds what it loads by its own URL. A
// real Rust panic in the core (the raw domainName export given bytes that
// are not UTF-8, as browser-page.test.mjs does: no test hook ships) makes
// the element import a second copy of the glue, pkg/backing_chain.js?instance=1
// beside the bundle, and keep its chain; a panic in the metadata module (its
// hook's global written during a walk) fails that walk with a CorePanic and
// the next walk imports pkg/backing_chain_meta.js?instance=2.
test('from the package (plain ES modules): a core panic and a metadata panic recover through the glue beside the bundle', { skip }, async (t) => {
  const base = await serveProject();
  const p = await browser.context.newPage();
  t.after(() => p.close());
  const errors = [];
  const requests = [];
  p.on('pageerror', (e) => errors.push(String(e)));
  p.on('response', (r) => { if (r.status() >= 400) errors.push(`${r.status()} ${r.url()}`); });
  p.on('request', (r) => requests.push(new URL(r.url()).pathname + new URL(r.url()).search));
  await p.goto(base + '/map.html');
  const el = p.locator('backing-chain-editor');
  await el.evaluate((e) => /** @type {any} */ (e).ready);
  await dropFiles(p, 'backing-chain-editor', [chain.top, chain.mid, chain.base]);
  await p.waitForFunction(() => /** @type {any} */ (document.querySelector('backing-chain-editor')).forest?.images.length === 3);
  const PKG = '/node_modules/backing-chain-editor/pkg/';
  const trap = await corePanic(p, PKG + 'backing_chain.js');
  assert.match(trap, /^RuntimeError: /);
  await p.waitForFunction(() => /** @type {HTMLElement} */ (document.querySelector('backing-chain-editor')).dataset.wasm === 'recovered');
  assert.ok(requests.includes(PKG + 'backing_chain.js?instance=1'), requests.join(' '));
  assert.equal(await el.evaluate((e) => /** @type {any} */ (e).forest.images.length), 3);
  const failed = await el.evaluate(async (e) => {
    const x = /** @type {any} */ (e);
    const once = () => {
      x.removeEventListener('backing-chain-editor-progress', once);
      /** @type {any} */ (globalThis).backingChainMetaPanic = 'backing-chain internal error: panicked at src/meta/test.rs:1:1: test';
    };
    x.addEventListener('backing-chain-editor-progress', once);
    try {
      await x.allocation('top.qcow2');
      return 'resolved';
    } catch (err) {
      return `${err.name}: ${err.message}`;
    }
  });
  assert.equal(failed, 'CorePanic: backing-chain internal error: panicked at src/meta/test.rs:1:1: test');
  const got = await el.evaluate(async (e) => /** @type {any} */ (e).allocation('base.qcow2').then((r) => r.allocation));
  assert.deepEqual(pick(got), layerOracle(chain.base));
  assert.deepEqual(requests.filter((u) => u.includes('backing_chain_meta')), [PKG + 'backing_chain_meta_bg.wasm', PKG + 'backing_chain_meta.js', PKG + 'backing_chain_meta.js?instance=2']);
  assert.deepEqual(errors, []);
});
