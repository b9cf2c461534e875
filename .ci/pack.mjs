// Make the npm package of the element: `node .ci/pack.mjs [OUTDIR]` (after
// `bash .ci/build`). It writes what <backing-chain-editor> loads, bundled by
// `.ci/ship.mjs`: backing-chain-editor.js (the element and every module it
// imports statically, one minified ES module), editor-meta.js,
// editor-alloc.js and editor-layer-form.js (imported on demand), probe-worker.js (with its imports),
// the two wasm modules' glue (minified) and .wasm files (the core and the
// metadata walks loaded on first use), and the .d.ts files —
// with package/package.json and package/README.md into OUTDIR/package
// (default target/npm), runs `npm pack` there and prints the tarball's path.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { WASM_MODULES, bundle } from './ship.mjs';
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const WWW = join(ROOT, 'www');
const out = resolve(process.argv[2] ?? join(ROOT, 'target', 'npm'));
const dest = join(out, 'package');

const pkg = JSON.parse(readFileSync(join(ROOT, 'package', 'package.json'), 'utf8'));
const cargo = readFileSync(join(ROOT, 'Cargo.toml'), 'utf8').match(/^version\s*=\s*"([^"]+)"/m)?.[1];
if (cargo && cargo !== pkg.version) throw new Error(`package/package.json version ${pkg.version} differs from Cargo.toml's ${cargo}`);
for (const f of WASM_MODULES.flatMap((m) => [m.glue, m.wasm])) {
  if (!existsSync(join(WWW, f))) throw new Error(`www/${f} is missing: run bash .ci/build first`);
}

rmSync(dest, { recursive: true, force: true });
mkdirSync(join(dest, 'pkg'), { recursive: true });
// The JS ships bundled (issue 18, `.ci/ship.mjs` bundle()): the element and
// its static imports in one module, the modules it imports on demand, the
// probe worker (started by URL) and the two glues each a file of their own;
// the types, the docs in them and the wasm as they are.
for (const { file, code } of await bundle(WWW)) writeFileSync(join(dest, file), code);
for (const f of ['backing-chain-editor.d.ts', ...WASM_MODULES.flatMap((m) => [m.types, m.wasm])]) {
  cpSync(join(WWW, f), join(dest, f));
}
for (const f of ['LICENSE-MIT', 'LICENSE-APACHE']) cpSync(join(ROOT, f), join(dest, f));
cpSync(join(ROOT, 'package', 'README.md'), join(dest, 'README.md'));
writeFileSync(join(dest, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
const name = execFileSync('npm', ['pack', '--silent', '--pack-destination', out], { cwd: dest, encoding: 'utf8' }).trim().split('\n').pop();
process.stdout.write(join(out, name) + '\n');
