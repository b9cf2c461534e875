// The hand-written declarations (www/backing-chain-wasm.d.ts,
// www/backing-chain-editor.d.ts) against what the JS really exports: a name
// declared there must exist, and an export or public member missing there
// is a declaration to write. (tsc --noEmit in .ci/test checks the JS against
// the types, and the element class against its declaration — `@satisfies` at
// its define() — but not the glue, which is built; this checks names both
// ways: the glue's exports, Session's methods, the element's members.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WWW } from '../support/server.mjs';

const dts = (name) => readFileSync(join(WWW, name), 'utf8');

/** Member names declared in `class NAME … { … }` of a .d.ts text (one per line). */
function members(text, cls) {
  const start = text.indexOf(`export class ${cls}`);
  assert.ok(start >= 0, `class ${cls} is declared`);
  const body = text.slice(text.indexOf('{', start) + 1, text.indexOf('\n}', start));
  return new Set([...body.matchAll(/^ {2}(?:static )?(?:readonly )?([A-Za-z_]\w*)[?(:<]/gm)].map((m) => m[1]));
}

test('backing-chain-wasm.d.ts declares every export of the wasm glue, and nothing it lacks', async () => {
  const glue = await import(join(WWW, 'pkg', 'backing_chain.js'));
  const text = dts('backing-chain-wasm.d.ts');
  const declared = new Set([...text.matchAll(/^export (?:default )?(?:function|class) (\w+)/gm)].map((m) => m[1]));
  declared.delete('init'); // `export default function init`
  const exported = new Set(Object.keys(glue).filter((k) => k !== 'default'));
  assert.deepEqual([...declared].filter((n) => !exported.has(n)), [], 'declared but not exported');
  assert.deepEqual([...exported].filter((n) => !declared.has(n)), [], 'exported but not declared');
  // Session and Probe: every method and getter, both ways.
  for (const cls of ['Session', 'Probe']) {
    const real = new Set(Object.getOwnPropertyNames(glue[cls].prototype).filter((k) => k !== 'constructor' && !k.startsWith('__')));
    const decl = members(text, cls);
    decl.delete('constructor');
    assert.deepEqual([...decl].filter((n) => !real.has(n)), [], `${cls}: declared but missing`);
    assert.deepEqual([...real].filter((n) => !decl.has(n)), [], `${cls}: present but not declared`);
  }
});

test('backing-chain-wasm-meta.d.ts declares every export of the metadata module’s glue, and nothing it lacks', async () => {
  const glue = await import(join(WWW, 'pkg', 'backing_chain_meta.js'));
  const text = dts('backing-chain-wasm-meta.d.ts');
  const declared = new Set([...text.matchAll(/^export (?:default )?(?:function|class) (\w+)/gm)].map((m) => m[1]));
  declared.delete('init');
  const exported = new Set(Object.keys(glue).filter((k) => k !== 'default'));
  assert.deepEqual([...declared].filter((n) => !exported.has(n)), [], 'declared but not exported');
  assert.deepEqual([...exported].filter((n) => !declared.has(n)), [], 'exported but not declared');
  for (const cls of ['MetaWalk', 'MetaChain', 'Session', 'Probe']) {
    const real = new Set(Object.getOwnPropertyNames(glue[cls].prototype).filter((k) => k !== 'constructor' && !k.startsWith('__')));
    const decl = members(text, cls);
    decl.delete('constructor');
    assert.deepEqual([...decl].filter((n) => !real.has(n)), [], `${cls}: declared but missing`);
    assert.deepEqual([...real].filter((n) => !decl.has(n)), [], `${cls}: present but not declared`);
  }
});

test('backing-chain-editor.d.ts declares the element’s public members and events as the module has them', async () => {
  // Enough of a browser for the module to load (it defines the element on import).
  const defined = [];
  globalThis.HTMLElement ??= class {};
  globalThis.customElements ??= { get: () => undefined, define: (n, c) => defined.push([n, c]) };
  const mod = await import(join(WWW, 'backing-chain-editor.js'));
  assert.deepEqual(defined.map(([n]) => n), ['backing-chain-editor']);
  const text = dts('backing-chain-editor.d.ts');
  const proto = mod.BackingChainEditor.prototype;
  const lifecycle = new Set(['constructor', 'connectedCallback', 'disconnectedCallback', 'attributeChangedCallback']);
  const real = new Set(Object.getOwnPropertyNames(proto).filter((k) => !k.startsWith('_') && !lifecycle.has(k)));
  real.add('ready'); // set in the constructor
  real.add('observedAttributes'); // static
  const declared = members(text, 'BackingChainEditor');
  for (const k of ['addEventListener', 'removeEventListener']) declared.delete(k); // typed overloads of HTMLElement's
  assert.deepEqual([...declared].filter((n) => !real.has(n)), [], 'declared but missing');
  assert.deepEqual([...real].filter((n) => !declared.has(n)), [], 'present but not declared');
  // Module exports, and the event names as the declaration spells them.
  for (const name of ['register', 'loadWasm', 'CorePanic', 'WasmLoadError', 'EVENTS', 'BackingChainEditor']) {
    assert.ok(name in mod, `${name} exported`);
    assert.match(text, new RegExp(`^export (?:declare )?(?:function|class|const) ${name}\\b`, 'm'), `${name} declared`);
  }
  for (const [key, type] of Object.entries(mod.EVENTS)) {
    assert.ok(type.startsWith('backing-chain-editor-'), type);
    assert.ok(text.includes(`readonly ${key}: '${type}';`), `EVENTS.${key} declared as '${type}'`);
    assert.ok(text.includes(`'${type}': `), `${type} in BackingChainEditorEventMap`);
  }
});
