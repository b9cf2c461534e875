// What ships, shared by the packer (`.ci/pack.mjs`) and the size accounting
// (`tests/js/bench-support.mjs`, issue 18): which www/ modules the element
// loads (closure), the element bundled as the npm package ships it (bundle:
// esbuild, ES modules in and out, the static part in one file) and the
// wasm-bindgen glue minified on its own (minify). www/ itself is served as
// written (`npm start`).
import { readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { transformSync } from 'esbuild';

/**
 * `entry` and every www/ module it imports (relative paths, glue in pkg/
 * left out). `staticOnly`: only `import … from`/`import '…'`, the modules a
 * page fetches before the entry runs (first paint); otherwise dynamic
 * `import('…')` too. @param {string} www @param {string} entry
 * @param {boolean} [staticOnly] @returns {string[]}
 */
export function closure(www, entry, staticOnly = false) {
  const re = staticOnly
    ? /(?:\bfrom\s*|\bimport\s*)['"]\.\/([\w./-]+?\.js)(?:\?[^'"]*)?['"]/g
    : /(?:\bfrom\s*|\bimport\s*\(?\s*)['"]\.\/([\w./-]+?\.js)(?:\?[^'"]*)?['"]/g;
  const seen = new Set();
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop();
    if (seen.has(f)) continue;
    seen.add(f);
    const src = readFileSync(join(www, f), 'utf8');
    for (const m of src.matchAll(re)) {
      if (!m[1].startsWith('pkg/')) todo.push(m[1]);
    }
  }
  return [...seen].sort();
}

/**
 * The page's wasm modules (issue 18): the core, loaded at first paint, and
 * the metadata walks, loaded the first time the user asks for an
 * allocation, a check or a chain map. Each is its wasm-bindgen glue (shipped
 * minified) and its .wasm (as built).
 */
export const WASM_MODULES = Object.freeze([
  { glue: 'pkg/backing_chain.js', wasm: 'pkg/backing_chain_bg.wasm', types: 'backing-chain-wasm.d.ts', firstPaint: true },
  { glue: 'pkg/backing_chain_meta.js', wasm: 'pkg/backing_chain_meta_bg.wasm', types: 'backing-chain-wasm-meta.d.ts', firstPaint: false },
]);

/** A style sheet minified (white space, comments, shorter colours and
 * selectors: esbuild's CSS minifier). @param {string} css @returns {string} */
export function minifyCss(css) {
  return transformSync(css, { loader: 'css', minify: true, logLevel: 'error' }).code;
}

/** One ES module minified as it ships. @param {string} code @returns {string} */
export function minify(code) {
  return transformSync(code, { format: 'esm', minify: true, legalComments: 'none' }).code;
}

/** The element's entry module, its name in the package as in www/. */
export const ENTRY = 'backing-chain-editor.js';
/** The probe worker: started by URL from the entry, its own file. */
export const WORKER = 'probe-worker.js';

/**
 * The element as the npm package ships it (issue 18): one ES module for what
 * a page loads at start (ENTRY and every module it imports statically), one
 * file per module it imports on demand (editor-meta.js, editor-alloc.js, editor-layer-form.js,
 * under their own names so the entry's `import('./editor-meta.js')` finds
 * them), the probe worker with its imports in one file, and the wasm glue
 * minified on its own (not bundled: editor-wasm.js imports a second copy,
 * `./pkg/backing_chain.js?instance=N`, for a fresh instance after a panic).
 * Every file sits where its source sits in www/, so each
 * `new URL('./pkg/…', import.meta.url)` still finds its file.
 *
 * The on-demand modules use modules of the entry's (editor-wasm.js and its
 * state, render.js): the entry re-exports those under names `$0`, `$1`, …
 * and the on-demand modules import them from `./backing-chain-editor.js`,
 * so a page has one copy of each module and no shared chunk to fetch.
 *
 * reader.js finds the probe worker beside itself only when its URL names
 * reader.js (elsewhere it was bundled by a host and the worker cannot be
 * found); in the package its code is in ENTRY, beside probe-worker.js.
 *
 * @param {string} www @returns {Promise<Array<{ file: string, code: string, first: boolean }>>} `first`: loaded at first paint
 */
export async function bundle(www) {
  const { build } = await import('esbuild');
  const statics = closure(www, ENTRY, true);
  const all = closure(www, ENTRY);
  // The on-demand files: what some module imports with `import('./x.js')`
  // (each bundled with its own static imports that the entry lacks).
  const dynamic = new Set(all.flatMap((f) => [...readFileSync(join(www, f), 'utf8').matchAll(/\bimport\s*\(\s*['"]\.\/([\w./-]+?\.js)['"]/g)].map((m) => m[1])));
  const lazy = all.filter((f) => !statics.includes(f) && dynamic.has(f));
  const common = { bundle: true, format: /** @type {const} */ ('esm'), minify: true, legalComments: /** @type {const} */ ('none'), write: false, outdir: '/', absWorkingDir: www, logLevel: /** @type {const} */ ('error'), external: ['./pkg/*'] };

  // Which modules of the entry's the on-demand ones import, and which names
  // (`import { a, b as c } from './m.js'`; anything else is refused).
  /** @type {Map<string, Set<string>>} module → names imported */
  const shared = new Map();
  for (const f of all.filter((x) => !statics.includes(x))) {
    for (const m of readFileSync(join(www, f), 'utf8').matchAll(/^import\s*(\{[^}]*\}|[^'";{}]*?)\s*from\s*['"]\.\/([\w./-]+?\.js)['"]/gm)) {
      if (!statics.includes(m[2])) continue;
      const names = m[1].match(/^\{([^}]*)\}$/)?.[1].split(',').map((s) => s.trim().split(/\s+as\s+/)[0]).filter(Boolean);
      if (!names) throw new Error(`.ci/ship.mjs: ${f} imports ${m[2]} as \`${m[1]}\`; only named imports are shared with the entry`);
      shared.set(m[2], new Set([...(shared.get(m[2]) ?? []), ...names]));
    }
  }
  /** @type {Map<string, string>} `module:name` → the entry's export */
  const alias = new Map();
  for (const [f, names] of shared) for (const n of names) alias.set(`${f}:${n}`, `$${alias.size}`);

  /** @type {import('esbuild').Plugin} */
  const mainPlugin = {
    name: 'backing-chain-entry',
    setup(b) {
      b.onResolve({ filter: /^backing-chain:entry$/ }, () => ({ path: ENTRY, namespace: 'backing-chain' }));
      b.onLoad({ filter: /.*/, namespace: 'backing-chain' }, () => ({
        resolveDir: www,
        contents: [`export * from './${ENTRY}';`, ...[...shared].map(([f, names]) => `export { ${[...names].map((n) => `${n} as ${alias.get(`${f}:${n}`)}`).join(', ')} } from './${f}';`)].join('\n'),
      }));
      // The on-demand modules stay files of their own.
      b.onResolve({ filter: /^\.\/[\w-]+\.js$/ }, (a) => (a.kind === 'dynamic-import' && lazy.includes(a.path.slice(2)) ? { path: a.path, external: true } : undefined));
      // The styles: the CSS inside the template string minified as CSS
      // (esbuild's JS minifier leaves a string's text alone).
      b.onLoad({ filter: /[\\/]editor-style\.js$/ }, async (a) => {
        const m = await import(pathToFileURL(a.path).href);
        if (Object.keys(m).join() !== 'CSS' || typeof m.CSS !== 'string') throw new Error('.ci/ship.mjs: editor-style.js should export one string, CSS');
        return { contents: `export const CSS = ${JSON.stringify(minifyCss(m.CSS))};`, loader: 'js' };
      });
      b.onLoad({ filter: /[\\/]reader\.js$/ }, (a) => {
        const src = readFileSync(a.path, 'utf8');
        const n = src.split("endsWith('/reader.js')").length - 1;
        if (n !== 1) throw new Error(`.ci/ship.mjs: reader.js's probe-worker check (endsWith('/reader.js')) found ${n} times, expected once: update bundle()`);
        return { contents: src.replace("endsWith('/reader.js')", `endsWith('/${ENTRY}')`), loader: 'js' };
      });
    },
  };
  /** @type {import('esbuild').Plugin} */
  const lazyPlugin = {
    name: 'backing-chain-lazy',
    setup(b) {
      b.onResolve({ filter: /^\.\/[\w-]+\.js$/ }, (a) => (a.namespace === 'file' && shared.has(a.path.slice(2)) ? { path: a.path.slice(2), namespace: 'backing-chain-shared' } : undefined));
      b.onLoad({ filter: /.*/, namespace: 'backing-chain-shared' }, (a) => ({
        resolveDir: www,
        contents: `export { ${[...(shared.get(a.path) ?? [])].map((n) => `${alias.get(`${a.path}:${n}`)} as ${n}`).join(', ')} } from './${ENTRY}';`,
      }));
      b.onResolve({ filter: new RegExp(`^\\./${ENTRY.replace(/[.-]/g, '\\$&')}$`) }, (a) => ({ path: a.path, external: true }));
    },
  };

  const main = await build({ ...common, entryPoints: [{ in: 'backing-chain:entry', out: ENTRY.replace(/\.js$/, '') }], plugins: [mainPlugin], metafile: true });
  // Each on-demand module on its own (no splitting): what two of them share
  // is only the entry's names (a one-line re-export in each), which
  // esbuild's splitting would put in a chunk file of its own.
  const builds = await Promise.all(lazy.map((f) => build({ ...common, entryPoints: [{ in: `./${f}`, out: f.replace(/\.js$/, '') }], plugins: [lazyPlugin], metafile: true })));
  const parts = { metafile: { inputs: {}, outputs: Object.assign({}, ...builds.map((b) => b.metafile.outputs)) }, outputFiles: builds.flatMap((b) => b.outputFiles) };
  // One copy of each module: the entry holds exactly the static ones, the
  // on-demand files none of them; the entry exports what ENTRY does (and the aliases).
  const inputs = (/** @type {import('esbuild').Metafile} */ m) => Object.values(m.outputs).flatMap((o) => Object.keys(o.inputs)).filter((i) => !i.includes(':'));
  const got = inputs(main.metafile).sort();
  if (got.join() !== statics.join()) throw new Error(`.ci/ship.mjs: the entry bundles ${got.join(', ')}; its static imports are ${statics.join(', ')}`);
  const twice = inputs(parts.metafile).filter((i) => statics.includes(i));
  if (twice.length) throw new Error(`.ci/ship.mjs: the on-demand modules would carry a second copy of ${twice.join(', ')} (import them by name: \`import { … } from\`)`);
  const own = await build({ ...common, bundle: false, external: undefined, entryPoints: [ENTRY], metafile: true });
  const exported = Object.values(main.metafile.outputs).find((o) => o.entryPoint)?.exports ?? [];
  const missing = Object.values(own.metafile.outputs)[0].exports.filter((e) => !exported.includes(e));
  if (missing.length) throw new Error(`.ci/ship.mjs: the bundled entry does not export ${missing.join(', ')}`);
  const worker = await build({ ...common, entryPoints: [`./${WORKER}`] });
  // Output paths are under outdir '/': the file's name in the package.
  const out = [...main.outputFiles, ...parts.outputFiles, ...worker.outputFiles].map((o) => {
    const file = relative('/', o.path).split(sep).join('/');
    return { file, code: o.text, first: file === ENTRY };
  });
  for (const m of WASM_MODULES) out.push({ file: m.glue, code: minify(readFileSync(join(www, m.glue), 'utf8')), first: m.firstPaint });
  return out.sort((a, b) => (a.file < b.file ? -1 : 1));
}
