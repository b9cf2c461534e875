// @ts-check
// The wasm core for <backing-chain-editor>: loading it once for all elements,
// and recovering from a Rust panic.
//
// A Rust panic traps the wasm instance (`RuntimeError: unreachable`); its state
// is unusable from then on. The core's panic hook sets
// `globalThis.backingChainPanic` (the message); the setter below notices it,
// every watcher (a connected element) is told, a fresh instance is made from a
// second copy of the wasm-bindgen glue (its instance is cached per module
// copy) and the compiled module, and each watcher rebuilds its session from
// what it keeps (images, mapping, domain XML, layout).

import * as glue from './pkg/backing_chain.js';

/** @typedef {typeof import('./backing-chain-wasm')} Glue the wasm API, typed in backing-chain-wasm.d.ts */
/** @type {Glue} */
const firstGlue = /** @type {any} */ (glue);

/** What a call into a trapped instance throws: the panic message. */
export class CorePanic extends Error {
  /**
   * @param {string} message
   * @param {string} [global] the panic global of the instance that trapped:
   *   `backingChainPanic` (the core: every element restarts with a fresh
   *   instance) or `backingChainMetaPanic` (the on-demand module: the next
   *   call loads a fresh one)
   */
  constructor(message, global = 'backingChainPanic') {
    super(message);
    this.name = 'CorePanic';
    this.global = global;
  }
}

/** Is `e` a panic of the on-demand module (not of the page's core)? @param {unknown} e */
export const isMetaPanic = (e) => e instanceof CorePanic && e.global === 'backingChainMetaPanic';

/** Why the wasm could not load, in words a user can act on. */
export class WasmLoadError extends Error {
  /**
   * @param {import('./backing-chain-editor').WasmLoadErrorKind} kind
   * @param {string} message
   * @param {string} [detail]
   */
  constructor(kind, message, detail) {
    super(message);
    this.name = 'WasmLoadError';
    this.kind = kind;
    this.detail = detail;
  }
}

/**
 * @typedef {{ dead: boolean, panic: string | null, global: string, onTrap(message: string): void }} Instance
 *   a wasm instance's state: dead after a trap (with the panic message), the
 *   global its panic hook writes, what to do when it traps
 * @typedef {Instance & { glue: Glue }} Core
 * @typedef {{ panicked(message: string): void, unrecoverable(message: string, e: unknown): void, rebuild(): void }} Watcher
 */

/** @type {Core} the current instance */
let core = coreInstance(firstGlue);
/** @type {WebAssembly.Module | null} for fresh instances */
let compiled = null;
let instances = 0;
/** @type {Promise<void> | null} while a fresh instance is being made */
let recovering = null;
/** @type {WeakMap<object, Core>} session → the instance it lives in */
const owner = new WeakMap();
/** @type {Set<Watcher>} connected elements with a session */
const watchers = new Set();
/** Sessions of dead instances: never freed (their instance trapped). */
const graveyard = [];
/** @type {string | null} */
let wasmUrl = null;
/** @type {Promise<void> | null} */
let loading = null;

/** A record of a core instance made from `glue`. @param {Glue} glue @returns {Core} */
function coreInstance(glue) {
  return { glue, dead: false, panic: null, global: 'backingChainPanic', onTrap: panicked };
}

/** @param {string} message */
function panicked(message) {
  const c = core;
  if (c.dead) return;
  c.dead = true;
  c.panic = message;
  queueMicrotask(() => recover(c, message));
}

if (!Object.getOwnPropertyDescriptor(globalThis, 'backingChainPanic')?.set) {
  /** @type {unknown} */
  let last;
  Object.defineProperty(globalThis, 'backingChainPanic', {
    configurable: true,
    get: () => last,
    set: (v) => {
      last = v;
      panicked(String(v));
    },
  });
}

/**
 * Run `fn` against instance `c` (the core or the metadata module); a trap (or
 * a dead instance) becomes a CorePanic.
 * @template T
 * @param {Instance} c
 * @param {() => T} fn
 * @returns {T}
 */
function guard(c, fn) {
  if (c.dead) throw new CorePanic(String(c.panic), c.global);
  try {
    return fn();
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) {
      c.onTrap(String(/** @type {any} */ (globalThis)[c.global] ?? `backing-chain internal error: ${e.message}`));
    }
    if (c.dead) throw new CorePanic(String(c.panic), c.global);
    throw e;
  }
}

/** The wasm object behind a guarded one (a `Probe` given back to `Session.addProbe`). @param {unknown} x */
const unwrap = (x) => (x !== null && typeof x === 'object' && /** @type {any} */ (x).__raw) || x;

/**
 * A guarded wrapper of one object of instance `c`: every call is guarded, its
 * arguments unwrapped, and the objects it returns of the instance's other
 * classes (`Session.newProbe`'s `Probe`) guarded in turn.
 * @template {object} T @param {Core | MetaCore} c @param {T} o @returns {T}
 */
function guarded(c, o) {
  return new Proxy(o, {
    get(t, k) {
      if (k === '__raw') return t;
      const v = guard(c, () => Reflect.get(t, k));
      if (typeof v !== 'function') return v;
      return (/** @type {unknown[]} */ ...a) => {
        const r = guard(c, () => v.apply(t, a.map(unwrap)));
        const Probe = /** @type {any} */ (c.glue).Probe;
        return Probe && r instanceof Probe ? guarded(c, r) : r;
      };
    },
  });
}

/**
 * A Session of the current instance whose every call is guarded (and the
 * `Probe`s it makes).
 * @returns {import('./backing-chain-wasm').Session}
 */
export function newSession() {
  const c = core;
  const p = guarded(c, new c.glue.Session());
  owner.set(p, c);
  return p;
}

// ---- The on-demand module (issue 17's walks, the edits; issue 18) ----
//
// MetaWalk and MetaChain, the XML edits (editXml, adoptChain) and a Session
// with `audit` live in their own wasm module (pkg/backing_chain_meta.js +
// backing_chain_meta_bg.wasm): a page that shows data (the tree, the XML,
// the chains table and its differences: all in the core) never loads it.
// The element loads it when the user applies an edit, sets a backing with a
// domain XML, audits, or asks for an allocation, a check or a map; it starts
// fetching and compiling it (`prefetchMeta`, no instance) when the user
// opens an edit form or a row's menu, or focuses an editing control. Its
// panic hook writes `globalThis.backingChainMetaPanic`, not the core's
// global: a panic in it fails the calls under way (a CorePanic whose
// `global` says so: `isMetaPanic`) and the next call gets a fresh instance;
// the page's core is not touched. A module that cannot be loaded (404,
// refused by the page's CSP, …) fails the call with a WasmLoadError; the
// next call tries again.

/** @typedef {typeof import('./backing-chain-wasm-meta')} MetaGlue the metadata module's API (backing-chain-wasm-meta.d.ts) */
/** @typedef {Instance & { glue: MetaGlue }} MetaCore */

/** @type {string | null} register({ metaWasmUrl }) */
let metaWasmUrl = null;
/** @type {Promise<MetaCore> | null} the current metadata instance (loaded or loading) */
let metaLoading = null;
/** @type {MetaCore | null} */
let metaCore = null;
/** @type {Promise<WebAssembly.Module> | null} its compiled module (fetched and compiled, or under way; null again after a failure) */
let metaCompiled = null;
let metaInstances = 0;

/** Instance `c` trapped: its walks fail, the next walk makes a fresh instance. @param {MetaCore | null} c @param {string} message */
function metaPanicked(c, message) {
  if (!c || c.dead) return;
  c.dead = true;
  c.panic = message;
  if (metaCore === c) {
    metaCore = null;
    metaLoading = null;
  }
}

if (!Object.getOwnPropertyDescriptor(globalThis, 'backingChainMetaPanic')?.set) {
  /** @type {unknown} */
  let last;
  Object.defineProperty(globalThis, 'backingChainMetaPanic', {
    configurable: true,
    get: () => last,
    set: (v) => {
      last = v;
      metaPanicked(metaCore, String(v));
    },
  });
}

/**
 * Where backing_chain_meta_bg.wasm is (before its first load).
 * @param {string | URL} url
 */
export function setMetaWasmUrl(url) {
  if (metaCompiled && String(url) !== metaWasmUrl) console.warn('backing-chain-editor: register({ metaWasmUrl }) came after the metadata module was loaded; it is ignored');
  metaWasmUrl = String(url);
}

/** The metadata module's URL: as registered, else beside a registered core's, else in pkg/ beside this module. */
function defaultMetaWasmUrl() {
  if (metaWasmUrl) return metaWasmUrl;
  if (wasmUrl) {
    try {
      return new URL('backing_chain_meta_bg.wasm', new URL(wasmUrl, globalThis.document?.baseURI ?? globalThis.location?.href)).href;
    } catch {
      // a relative URL without a base: fall through
    }
  }
  try {
    return new URL('./pkg/backing_chain_meta_bg.wasm', import.meta.url).href;
  } catch {
    return 'pkg/backing_chain_meta_bg.wasm';
  }
}

/**
 * The metadata module, loaded on first use (and again after a panic or a
 * failed load). Rejects with a WasmLoadError.
 * @returns {Promise<MetaCore>}
 */
export function loadMeta() {
  if (!metaLoading) {
    const p = doLoadMeta();
    metaLoading = p;
    p.then(
      (c) => {
        if (metaLoading === p) metaCore = c;
      },
      () => {
        if (metaLoading === p) metaLoading = null;
      },
    );
  }
  return metaLoading;
}

/** The on-demand module fetched and compiled (once; again after a failure). @returns {Promise<WebAssembly.Module>} */
function compileMeta() {
  if (!metaCompiled) {
    const p = compileFrom(defaultMetaWasmUrl(), { noun: 'the on-demand module (edits, audit, allocation, map, check)', file: 'backing_chain_meta_bg.wasm', option: 'metaWasmUrl' });
    metaCompiled = p;
    p.catch(() => {
      if (metaCompiled === p) metaCompiled = null;
    });
  }
  return metaCompiled;
}

/**
 * Start fetching and compiling the on-demand module, without an instance
 * (the user is about to edit): the load that follows only instantiates it.
 * A failure is not said here but by the load that needs it (which tries
 * again). Does nothing before the page's core is loaded.
 */
export function prefetchMeta() {
  if (compiled && !metaCore && !metaLoading) compileMeta().catch(() => {});
}

/** @returns {Promise<MetaCore>} */
async function doLoadMeta() {
  // The page's core first: it says why WebAssembly cannot run here at all.
  await loadWasm();
  const module = await compileMeta();
  // A fresh instance after a panic needs a second copy of the glue (it keeps its instance).
  /** @type {MetaGlue} */
  let glue;
  try {
    glue = metaInstances++ === 0 ? await import('./pkg/backing_chain_meta.js') : await import(new URL(`./pkg/backing_chain_meta.js?instance=${metaInstances}`, import.meta.url).href);
  } catch (e) {
    throw new WasmLoadError('network', 'The on-demand module’s JavaScript (backing_chain_meta.js) could not be loaded.', errorText(e));
  }
  try {
    await glue.default({ module_or_path: module });
  } catch (e) {
    throw new WasmLoadError('compile', 'The on-demand module (edits, audit, allocation, map, check) could not be started.', errorText(e));
  }
  /** @type {MetaCore} */
  const c = { glue, dead: false, panic: null, global: 'backingChainMetaPanic', onTrap: (m) => metaPanicked(c, m) };
  return c;
}

/** A metadata walk (issue 17). @param {MetaCore} c @param {number} fileLen @param {{ check?: boolean }} [options] */
export function newMetaWalk(c, fileLen, options) {
  return guarded(c, guard(c, () => new c.glue.MetaWalk(fileLen, options)));
}

/** A chain of metadata walks, in instance `c` (its walks must be of the same instance). @param {MetaCore} c */
export function newMetaChain(c) {
  return guarded(c, guard(c, () => new c.glue.MetaChain()));
}

/** The on-demand module when it is loaded and alive, else null (`loadMeta()` loads it). */
export const metaLoaded = () => (metaCore && !metaCore.dead ? metaCore : null);

/**
 * The XML edits of the on-demand module's instance `c`, guarded.
 * @param {MetaCore} c
 */
export function xmlEdits(c) {
  const g = c.glue;
  return {
    /** @type {MetaGlue['editXml']} */
    editXml: (...a) => guard(c, () => g.editXml(...a)),
    /** @type {MetaGlue['adoptChain']} */
    adoptChain: (...a) => guard(c, () => g.adoptChain(...a)),
  };
}

/**
 * A Session of the on-demand module's instance `c` (for `audit`), guarded.
 * @param {MetaCore} c
 * @returns {import('./backing-chain-wasm-meta').Session}
 */
export function newMetaSession(c) {
  return guarded(c, guard(c, () => new c.glue.Session()));
}
/** @type {Glue['describeXml']} */
export const describeXml = (...a) => guard(core, () => core.glue.describeXml(...a));
/** @type {Glue['seclabels']} */
export const seclabels = (...a) => guard(core, () => core.glue.seclabels(...a));
/** @type {Glue['parseHosts']} */
export const parseHosts = (...a) => guard(core, () => core.glue.parseHosts(...a));
/** @type {Glue['domainName']} */
export const domainName = (...a) => guard(core, () => core.glue.domainName(...a));

/** @type {Glue['rebaseCommand']} */
export const rebaseCommand = (...a) => guard(core, () => core.glue.rebaseCommand(...a));

/** The compiled wasm module (once loaded), for a probe worker's instance. */
export const wasmModule = () => compiled;

/** Is the instance `session` was made in dead (a panic), with no restart under way? @param {object} session */
export const needsRebuild = (session) => !!owner.get(session)?.dead && !recovering;

/** Resolves once no fresh instance is being made. */
export async function settled() {
  while (recovering) await recovering.catch(() => {});
}

/** @param {Watcher} w */
export function watch(w) {
  watchers.add(w);
}
/** @param {Watcher} w */
export function unwatch(w) {
  watchers.delete(w);
}
/** A session of a dead instance: kept, never freed. @param {unknown} s */
export function bury(s) {
  graveyard.push(s);
}

/**
 * @param {Core} dead
 * @param {string} message
 */
async function recover(dead, message) {
  for (const w of watchers) w.panicked(message);
  recovering = (async () => {
    const url = new URL(`./pkg/backing_chain.js?instance=${++instances}`, import.meta.url).href;
    /** @type {Glue} */
    const fresh = await import(url);
    await fresh.default({ module_or_path: /** @type {WebAssembly.Module} */ (compiled) });
    if (core === dead) core = coreInstance(fresh);
  })();
  try {
    await recovering;
  } catch (e) {
    for (const w of watchers) w.unrecoverable(message, e);
    return;
  } finally {
    recovering = null;
  }
  for (const w of watchers) w.rebuild();
}

/**
 * Where backing_chain_bg.wasm is (before the first load; later ones are ignored).
 * @param {string | URL} url
 */
export function setWasmUrl(url) {
  if (loading && String(url) !== wasmUrl) console.warn('backing-chain-editor: register({ wasmUrl }) came after the wasm started loading; it is ignored');
  wasmUrl = String(url);
}

function defaultWasmUrl() {
  try {
    return new URL('./pkg/backing_chain_bg.wasm', import.meta.url).href;
  } catch {
    return 'pkg/backing_chain_bg.wasm';
  }
}

/** Load the wasm once for all elements. */
export function loadWasm() {
  if (!loading) loading = doLoad(wasmUrl ?? defaultWasmUrl());
  return loading;
}

/** @param {string} url */
async function doLoad(url) {
  compiled = await compileFrom(url, { noun: 'the WebAssembly module', file: 'backing_chain_bg.wasm', option: 'wasmUrl' });
  try {
    await firstGlue.default({ module_or_path: compiled });
  } catch (e) {
    throw new WasmLoadError('compile', 'The WebAssembly module could not be started.', errorText(e));
  }
}

/**
 * Fetch and compile one wasm module; every failure a WasmLoadError that
 * says what to do.
 * @param {string} url
 * @param {{ noun: string, file: string, option: string }} names the module in words, its file name, its register() option
 * @returns {Promise<WebAssembly.Module>}
 */
async function compileFrom(url, { noun, file, option }) {
  const what = noun[0].toUpperCase() + noun.slice(1);
  if (globalThis.location?.protocol === 'file:') {
    throw new WasmLoadError(
      'file',
      `${what} cannot be loaded from a file:// page.`,
      'Serve the page over HTTP instead (any static server that sends .wasm files as application/wasm, e.g. `python3 -m http.server`).',
    );
  }
  let resp;
  try {
    resp = await fetch(url);
  } catch (e) {
    throw new WasmLoadError('network', `${what} could not be fetched from ${url}.`, `${errorText(e)} (a Content-Security-Policy whose connect-src leaves it out refuses it too).`);
  }
  if (!resp.ok) {
    throw new WasmLoadError('http', `${what} could not be fetched: HTTP ${resp.status} for ${url}.`, `Check that ${file} is served at that URL, or give its URL with register({ ${option} }).`);
  }
  const type = (resp.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/wasm') {
    throw new WasmLoadError(
      'mime',
      `The server sends ${noun} as “${type || 'no type'}”, not application/wasm.`,
      'Configure the server to send .wasm files with the MIME type application/wasm (python3 -m http.server does).',
    );
  }
  const bytes = await resp.arrayBuffer();
  try {
    return await WebAssembly.compile(bytes);
  } catch (e) {
    const msg = errorText(e);
    if (/unsafe-eval|content security policy|csp/i.test(msg)) {
      throw new WasmLoadError(
        'csp',
        'The page’s Content-Security-Policy does not allow WebAssembly.',
        "Add 'wasm-unsafe-eval' to script-src, e.g. script-src 'self' 'wasm-unsafe-eval'. (" + msg + ')',
      );
    }
    throw new WasmLoadError('compile', `${what} could not be started.`, msg);
  }
}

/**
 * An error's words: `reason` (the core's XML errors: the message without
 * "XML error at byte N: "), else `message`, else the value as text.
 * @param {unknown} e
 * @param {{ reason?: boolean }} [o]
 */
export function errorText(e, { reason = false } = {}) {
  const x = /** @type {any} */ (e);
  if (reason && typeof x?.reason === 'string') return x.reason;
  return String(x?.message ?? x);
}
