// What ships, shared by the packer (`.ci/pack.mjs`) and the size accounting
// (`tests/js/bench-support.mjs`, issue 18): which www/ modules the element
// loads, and each module minified on its own (esbuild, ES module in, ES
// module out: the same file names and the same relative imports, so a page
// loads the same modules; only white space, comments and local names go).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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

/** One ES module minified as it ships. @param {string} code @returns {string} */
export function minify(code) {
  return transformSync(code, { format: 'esm', minify: true, legalComments: 'none' }).code;
}
