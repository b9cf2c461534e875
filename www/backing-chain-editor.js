// <backing-chain-editor>: drop disk images and a libvirt domain XML, see the
// backing chains, take the XML with <backingStore> away.
//
//   import { register } from './backing-chain-editor.js';
//   register({ wasmUrl: '/path/to/backing_chain_bg.wasm' }); // optional
//   <backing-chain-editor domain-xml="…" layout="nested|flat" readonly>
//
// The element owns no parsing: it reads the byte ranges the wasm core asks
// for, calls the core, and renders what comes back as text nodes.

import * as firstGlue from './pkg/backing_chain.js';
import { blobReader, collectDrop, filesFromList, isDocument, probeMany, readText } from './reader.js';
import { h, humanSize, formatCount, highlightXml, xmlPieces, whenNear, bytePosition, copyText, SEVERITY_ICON } from './render.js';
import { CSS } from './editor-style.js';

const TAG = 'backing-chain-editor';
/** From this many images on, rows off screen are not laid out. */
const MANY_IMAGES = 200;
// Large results are rendered only near the screen: the XML in pieces of
// lines (over 4), the chains in the XML (over 2) and the diagnostics (over 4)
// in groups.
const XML_PIECE = 100;
const DISK_GROUP = 20;
const DIAG_GROUP = 50;
let wasmUrl = null;
let loading = null;
const ENT = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };
const decode = (e, n, v, c = parseInt(v, n?.length > 1 ? 16 : 10)) => (n ? (c <= 0x10ffff ? String.fromCodePoint(c) : e) : ENT[v] ?? e);
const fileAttrs = (x) => new Set([...x.matchAll(/\sfile=(['"])(.*?)\1/g)].map((m) => m[2].replace(/&(#x?)?(\w+);/g, decode)));

// ---- the wasm instance, and recovery from a Rust panic ---------------------
//
// A Rust panic traps the wasm instance (`RuntimeError: unreachable`); its state
// is unusable from then on. The core's panic hook sets
// `globalThis.backingChainPanic` (the message); the setter below notices it,
// every live element shows the message, a fresh instance is made from a
// second copy of the wasm-bindgen glue (its instance is cached per module
// copy) and the compiled module, and each element rebuilds its session from
// what it keeps (images, mapping, domain XML, layout).

/** What a call into a trapped instance throws: the panic message. */
export class CorePanic extends Error {
  constructor(message) {
    super(message);
    this.name = 'CorePanic';
  }
}

let core = { glue: firstGlue, dead: false, panic: null }; // the current instance
let compiled = null; // the WebAssembly.Module, for fresh instances
let instances = 0;
let recovering = null; // Promise while a fresh instance is being made
const live = new Set(); // connected elements with a session
const graveyard = []; // sessions of dead instances: never freed (their instance trapped)

function panicked(message) {
  const c = core;
  if (c.dead) return;
  c.dead = true;
  c.panic = message;
  queueMicrotask(() => recover(c, message));
}

if (!Object.getOwnPropertyDescriptor(globalThis, 'backingChainPanic')?.set) {
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

/** Run `fn` against instance `c`; a trap (or a dead instance) becomes a CorePanic. */
function guard(c, fn) {
  if (c.dead) throw new CorePanic(c.panic);
  try {
    return fn();
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) {
      panicked(String(globalThis.backingChainPanic ?? `backing-chain internal error: ${e.message}`));
    }
    if (c.dead) throw new CorePanic(c.panic);
    throw e;
  }
}

/** A Session of the current instance whose every call is guarded. */
function newSession() {
  const c = core;
  const s = new c.glue.Session();
  return new Proxy(s, {
    get(t, k) {
      if (k === '__raw') return t;
      const v = guard(c, () => t[k]);
      return typeof v === 'function' ? (...a) => guard(c, () => v.apply(t, a)) : v;
    },
  });
}
const describeXml = (...a) => guard(core, () => core.glue.describeXml(...a));
const editXml = (...a) => guard(core, () => core.glue.editXml(...a));
const adoptChain = (...a) => guard(core, () => core.glue.adoptChain(...a));
const seclabels = (...a) => guard(core, () => core.glue.seclabels(...a));

async function recover(dead, message) {
  for (const el of live) el._panicked(message);
  recovering = (async () => {
    const url = new URL(`./pkg/backing_chain.js?instance=${++instances}`, import.meta.url).href;
    const glue = await import(url);
    await glue.default({ module_or_path: compiled });
    if (core === dead) core = { glue, dead: false, panic: null };
  })();
  try {
    await recovering;
  } catch (e) {
    for (const el of live) el._unrecoverable(message, e);
    return;
  } finally {
    recovering = null;
  }
  for (const el of live) el._rebuild();
}

/** Why the wasm could not load, in words a user can act on. */
export class WasmLoadError extends Error {
  constructor(kind, message, detail) {
    super(message);
    this.name = 'WasmLoadError';
    this.kind = kind;
    this.detail = detail;
  }
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

async function doLoad(url) {
  if (globalThis.location?.protocol === 'file:') {
    throw new WasmLoadError(
      'file',
      'The WebAssembly module cannot be loaded from a file:// page.',
      'Serve the directory over HTTP instead, e.g. `npm start` (then open http://127.0.0.1:8080/) or `python3 -m http.server -d www`.',
    );
  }
  let resp;
  try {
    resp = await fetch(url);
  } catch (e) {
    throw new WasmLoadError('network', `The WebAssembly module could not be fetched from ${url}.`, String(e?.message ?? e));
  }
  if (!resp.ok) {
    throw new WasmLoadError('http', `The WebAssembly module could not be fetched: HTTP ${resp.status} for ${url}.`, 'Build it first with `bash .ci/build` (it goes to www/pkg/).');
  }
  const type = (resp.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/wasm') {
    throw new WasmLoadError(
      'mime',
      `The server sends the WebAssembly module as “${type || 'no type'}”, not application/wasm.`,
      'Configure the server to send .wasm files with the MIME type application/wasm (python3 -m http.server and `npm start` do).',
    );
  }
  const bytes = await resp.arrayBuffer();
  try {
    compiled = await WebAssembly.compile(bytes);
    await firstGlue.default({ module_or_path: compiled });
  } catch (e) {
    const msg = String(e?.message ?? e);
    if (/unsafe-eval|content security policy|csp/i.test(msg)) {
      throw new WasmLoadError(
        'csp',
        'The page’s Content-Security-Policy does not allow WebAssembly.',
        "Add 'wasm-unsafe-eval' to script-src, e.g. script-src 'self' 'wasm-unsafe-eval'. (" + msg + ')',
      );
    }
    throw new WasmLoadError('compile', 'The WebAssembly module could not be started.', msg);
  }
}

/**
 * Define the element (once). `wasmUrl` locates backing_chain_bg.wasm for hosts
 * that bundle this module into a classic script, where import.meta.url
 * cannot. Call before the first element is connected.
 */
export function register({ wasmUrl: url, name = TAG } = {}) {
  if (url) {
    if (loading && String(url) !== wasmUrl) console.warn('backing-chain-editor: register({ wasmUrl }) came after the wasm started loading; it is ignored');
    wasmUrl = String(url);
  }
  if (!customElements.get(name)) customElements.define(name, name === TAG ? BackingChainEditor : class extends BackingChainEditor {});
  return customElements.get(name);
}

let sheet = null;
function styleSheet() {
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
  }
  return sheet;
}

let uid = 0;

export class BackingChainEditor extends HTMLElement {
  static get observedAttributes() {
    return ['domain-xml', 'layout', 'readonly', 'base-dir', 'mode', 'untrusted'];
  }

  constructor() {
    super();
    this._id = `bce${++uid}`;
    this._session = null;
    this._meta = new Map(); // name → { size, bytesRead, reads }
    this._domainText = '';
    this._goodDomain = '';
    this._xmlError = null;
    this._layout = 'nested';
    this._mode = 'populate'; // or 'validate'
    this._mapping = new Map(); // image filename → backing image filename (the user's choice)
    this._parked = new Map(); // dropped data files out of the session: name → format
    this._editing = null; // { disk, depth, kind: 'edit' | 'insert' | 'seclabel' }
    this._editError = null;
    this._baseDir = '';
    this._forest = null;
    this._output = null;
    this._selected = null; // image filename
    this._collapsed = new Set();
    this._openShared = new Set(); // shared bases whose overlays are listed
    this._lastXml = '';
    this._jobs = [];
    this._waiters = [];
    this._undo = [];
    this._redo = [];
    this._running = null;
    this._pending = 0;
    this._done = 0;
    let ok;
    let ko;
    this.ready = new Promise((a, b) => {
      ok = a;
      ko = b;
    });
    this.ready.catch(() => {});
    this._ready = { ok, ko };
    const root = this.attachShadow({ mode: 'open' });
    root.adoptedStyleSheets = [styleSheet()];
    this._build(root);
  }

  connectedCallback() {
    if (this._started) {
      if (this._session) live.add(this);
      if (this._session && this._core.dead && !recovering) this._rebuild();
      return;
    }
    this._started = true;
    // A microtask later, so that a register({ wasmUrl }) right after the
    // import still applies.
    Promise.resolve().then(loadWasm).then(
      () => {
        this._session = newSession();
        this._core = core;
        this._applyMapping();
        if (this.isConnected) live.add(this);
        this._els.status.replaceChildren();
        this._els.status.className = 'status';
        this._ready.ok(this);
        this._update();
      },
      (e) => {
        const err = e instanceof WasmLoadError ? e : new WasmLoadError('unknown', 'The WebAssembly module could not be loaded.', String(e?.message ?? e));
        this._showLoadError(err);
        this._ready.ko(err);
      },
    );
  }

  disconnectedCallback() {
    live.delete(this);
  }

  attributeChangedCallback(name, _old, value) {
    if (name === 'domain-xml') this.domainXml = value ?? '';
    else if (name === 'layout') this.layout = value ?? 'nested';
    else if (name === 'base-dir') this.baseDir = value ?? '';
    else if (name === 'mode') this.mode = value ?? 'populate';
    else if (name === 'readonly') this._applyReadonly();
    else if (name === 'untrusted') {
      this._applyMapping();
      this._update();
    }
  }

  // ---- public API ------------------------------------------------------

  get domainXml() {
    return this._domainText;
  }
  set domainXml(v) {
    v = v == null ? '' : String(v);
    if (this._els.domain.value !== v) this._els.domain.value = v;
    this._setDomain(v);
  }
  get layout() {
    return this._layout;
  }
  set layout(v) {
    v = v === 'flat' ? 'flat' : 'nested';
    if (v === this._layout) return;
    this._record();
    this._layout = v;
    for (const r of this._els.layoutRadios) r.checked = r.value === v;
    this._update();
  }
  /** `populate` (default) or `validate` (compare each disk's chain with the images). */
  get mode() {
    return this._mode;
  }
  set mode(v) {
    v = v === 'validate' ? 'validate' : 'populate';
    if (v === this._mode) return;
    this._record();
    this._mode = v;
    for (const r of this._els.modeRadios) r.checked = r.value === v;
    this._update();
  }
  get readonly() {
    return this.hasAttribute('readonly');
  }
  set readonly(v) {
    this.toggleAttribute('readonly', !!v);
  }
  get untrusted() {
    return this.hasAttribute('untrusted');
  }
  set untrusted(v) {
    this.toggleAttribute('untrusted', !!v);
  }
  get baseDir() {
    return this._baseDir;
  }
  set baseDir(v) {
    v = v == null ? '' : String(v);
    if (this._els.baseDir.value !== v) this._els.baseDir.value = v;
    if (v === this._baseDir) return;
    this._record();
    this._baseDir = v;
    this._update();
  }
  /** The forest JSON from the core (images, links, chains, overlays). */
  get forest() {
    return this._forest;
  }

  /** Missing backing files (absolute paths) a host may add; with `untrusted`, never a flagged name. */
  missingBackings() {
    const f = this._forest;
    if (!f) return [];
    const bad = new Set(this.untrusted ? f.chains.flatMap((c) => c.diagnostics.filter((d) => d.code === 'untrusted-backing-name').map((d) => d.image)) : []);
    return [...new Set(f.links.filter((l, i) => l.kind === 'missing' && l.resolved.startsWith('/') && !bad.has(i)).map((l) => l.resolved))];
  }

  /** Add files (a FileList or array of File): images are probed, an XML file becomes the domain XML. */
  addFiles(fileList) {
    return this._addEntries(filesFromList(fileList));
  }

  /** Add an image read through `reader(offset, length) → Promise<Uint8Array>`. */
  addImage(name, reader, { size = -1 } = {}) {
    if (typeof reader !== 'function') throw new TypeError('addImage(name, reader): reader must be a function');
    return this._probe([{ name: String(name), size, reader }]);
  }

  /** Add the images of a `qemu-img info --backing-chain --output=json` document. Returns their names. */
  async addQemuImgJson(text) {
    await this.ready;
    while (recovering) await recovering.catch(() => {});
    if (!this._session) throw new CorePanic(this._panicMessage ?? 'the core is not running');
    this._record();
    let names;
    try {
      names = this._session.addQemuImgJson(String(text));
    } catch (e) {
      this._undo.pop();
      this._updateHistoryButtons();
      throw e;
    }
    for (const n of names) this._meta.set(n, { bytesRead: 0, reads: 0, size: -1, job: { name: n, json: String(text) } });
    this._update();
    return names;
  }

  /** Choose the backing image of `image` among the known images (`null`: as its header says). */
  setBacking(image, backing) {
    image = String(image);
    const now = this._mapping.get(image) ?? null;
    backing = backing == null || backing === '' ? null : String(backing);
    if (now === backing) return;
    this._record();
    if (backing === null) this._mapping.delete(image);
    else this._mapping.set(image, backing);
    this._applyMapping();
    this._update();
  }

  /**
   * Edit a disk's chain in the domain XML (the core's xml::edit operations):
   * `{ op: 'set-layer' | 'insert-layer' | 'remove-layer' | 'set-terminator' | 'set-seclabel' | 'remove-seclabel', disk, depth, layer?, on?, seclabel?, model? }`.
   * A chain that came from the images is first written into the domain XML, so it is kept (trusted) from then on.
   */
  edit(op) {
    if (!this._session) throw new Error('backing-chain-editor: the wasm module is not loaded yet (await element.ready)');
    const eff = this._effectiveDoc();
    if (!eff) throw new Error('nothing to edit: no disk');
    const base = this._goodDomain ? adoptChain(this._goodDomain, eff, op.disk) : eff;
    const next = editXml(base, op);
    this._editing = null;
    this._editError = null;
    this.domainXml = next;
    return next;
  }

  /** Validate mode: write what the images say into each disk whose chain diverges. */
  replaceWithImages() {
    if (!this._session || !this._goodDomain) return false;
    const out = this._session.xml(this._goodDomain, { ...this._options('nested'), mode: 'validate', replace: true });
    if (out.xml === this._goodDomain) return false;
    this.domainXml = out.xml;
    return true;
  }

  /** Undo the last change (images, domain XML and its edits, base directory, layout, mode, backing choices). */
  undo() {
    const snap = this._undo.pop();
    if (!snap) return Promise.resolve(false);
    this._redo.push(this._snapshot());
    return this._restore(snap).then(() => true);
  }

  /** Redo what undo() undid. */
  redo() {
    const snap = this._redo.pop();
    if (!snap) return Promise.resolve(false);
    this._undo.push(this._snapshot());
    return this._restore(snap).then(() => true);
  }

  /** The XML for the current state (`layout` defaults to the element's). */
  getXml({ layout } = {}) {
    if (!this._session) throw new Error('backing-chain-editor: the wasm module is not loaded yet (await element.ready)');
    return this._session.xml(this._goodDomain || null, this._options(layout)).xml;
  }

  /** Forget one image (by the name it was added with). */
  removeImage(name) {
    if (!this._session || !this._meta.has(String(name))) return false;
    this._record();
    this._session.remove(String(name));
    this._meta.delete(String(name));
    this._update();
    return true;
  }

  /** Forget every image (the domain XML stays). */
  clear() {
    if (this._meta.size) this._record();
    this._session?.clear();
    this._meta.clear();
    this._selected = null;
    this._collapsed.clear();
    this._update();
  }

  // ---- internals -------------------------------------------------------

  _snapshot() {
    return { domain: this._domainText, baseDir: this._baseDir, layout: this._layout, mode: this._mode, mapping: new Map(this._mapping), images: new Map(this._meta) };
  }

  /** Remember the state before a change (not while undoing/redoing). */
  _record() {
    if (this._restoring || !this._session) return;
    this._undo.push(this._snapshot());
    if (this._undo.length > 200) this._undo.shift();
    this._redo = [];
    this._updateHistoryButtons();
  }

  async _restore(snap) {
    this._restoring = true;
    try {
      this._domainText = snap.domain;
      this._els.domain.value = snap.domain;
      this._baseDir = snap.baseDir;
      this._els.baseDir.value = snap.baseDir;
      this._layout = snap.layout;
      for (const r of this._els.layoutRadios) r.checked = r.value === snap.layout;
      this._mode = snap.mode;
      for (const r of this._els.modeRadios) r.checked = r.value === snap.mode;
      this._mapping = new Map(snap.mapping);
      this._applyMapping();
      this._editing = null;
      this._editError = null;
      // Images: drop what the snapshot does not have, re-probe what it had.
      const same = (n, m) => snap.images.get(n)?.job === m.job;
      for (const [n, m] of [...this._meta]) {
        if (!same(n, m)) {
          this._session?.remove(n);
          this._meta.delete(n);
        }
      }
      const again = [...snap.images.values()].filter((m) => !this._meta.has(m.job.name)).map((m) => m.job);
      // Images from qemu-img JSON come back from their document.
      const texts = new Set(again.filter((j) => j.json !== undefined).map((j) => j.json));
      for (const text of texts) {
        for (const n of this._session.addQemuImgJson(text)) {
          const m = snap.images.get(n);
          if (m && m.job.json === text) this._meta.set(n, m);
          else if (!this._meta.has(n)) this._session.remove(n);
        }
      }
      const probe = again.filter((j) => j.json === undefined);
      if (probe.length) await this._probe(probe, { record: false });
      else this._update();
    } finally {
      this._restoring = false;
      this._updateHistoryButtons();
    }
  }

  _updateHistoryButtons() {
    this._els.undo.disabled = !this._undo.length;
    this._els.redo.disabled = !this._redo.length;
  }

  _applyMapping() {
    this._session?.setMapping([...this._mapping]);
    this._session?.setUntrusted(this.untrusted);
  }

  _options(layout = this._layout) {
    const o = { layout: layout === 'flat' ? 'flat' : 'nested', mode: this._mode };
    if (this._baseDir.trim()) o['base-dir'] = this._baseDir.trim();
    return o;
  }

  _applyReadonly() {
    const ro = this.readonly;
    this._els.domain.readOnly = ro;
    this._els.baseDir.readOnly = ro;
  }

  _setDomain(text) {
    if (text === this._domainText) return;
    this._record();
    this._domainText = text;
    this._update();
  }

  async _addEntries(entries) {
    const docs = entries.filter((e) => isDocument(e.path));
    const images = entries.filter((e) => !isDocument(e.path));
    for (const d of docs.filter((x) => /\.json$/i.test(x.path))) {
      try {
        const names = await this.addQemuImgJson(await readText(await d.file));
        this._notice(`${d.path}: ${names.length} image${names.length === 1 ? '' : 's'} from qemu-img JSON.`);
      } catch (e) {
        this._notice(`${d.path}: ${e.message}`);
      }
    }
    const xmlDocs = docs.filter((x) => !/\.json$/i.test(x.path));
    for (const d of xmlDocs.slice(0, 1)) {
      try {
        const text = await readText(await d.file);
        this.domainXml = text;
      } catch (e) {
        this._notice(`${d.path}: ${e.message}`);
      }
    }
    if (xmlDocs.length > 1) this._notice(`Only the first XML document is used (${xmlDocs.length} dropped).`);
    // The size (a round trip in Chromium) is asked for in the probe, among other reads.
    await this._probe(images.map((e) => ({ name: e.path, from: e.from, get size() { return Promise.resolve(e.file).then((f) => f.size); }, reader: blobReader(e.file) })));
  }

  /** Queue images for probing; concurrent calls are coalesced into one run
   *  (one forest and one render per run, not per image). Resolves once they
   *  are in the forest. */
  _probe(jobs, { record = true } = {}) {
    if (!jobs.length) return Promise.resolve();
    const done = new Promise((ok, ko) => this._waiters.push({ ok, ko }));
    this._jobs.push(...jobs.map((job) => ({ job, record })));
    this._pending += jobs.length;
    this._showProgress();
    this._running ??= this._run();
    return done;
  }

  async _run() {
    try {
      await this.ready;
    } catch (e) {
      for (const w of this._waiters.splice(0)) w.ko(e);
      this._jobs = [];
      this._running = null;
      return;
    }
    await Promise.resolve(); // let calls made in the same tick join this run
    while (this._jobs.length) {
      while (recovering) await recovering.catch(() => {});
      if (!this._session) {
        const e = new CorePanic(this._panicMessage ?? 'the core is not running');
        for (const w of this._waiters.splice(0)) w.ko(e);
        this._jobs = [];
        break;
      }
      const waiters = this._waiters.splice(0);
      // The same name again replaces the image (last one wins).
      const batch = this._jobs.splice(0);
      if (batch.some((b) => b.record)) this._record();
      const byName = new Map();
      for (const { job } of batch) byName.set(job.name, job);
      const jobs = [...byName.values()];
      for (const j of jobs) {
        this._session.remove(j.name);
        this._meta.delete(j.name);
      }
      const base = this._done;
      try {
        const results = await probeMany(this._session, jobs, (n) => {
          this._done = base + n;
          this._showProgress();
        });
        results.forEach((r, i) => this._meta.set(r.name, { bytesRead: r.bytesRead, reads: r.reads, size: r.size, job: jobs[i] }));
        this._update();
        for (const w of waiters) w.ok();
      } catch (e) {
        for (const w of waiters) w.ko(e);
      }
    }
    this._pending = 0;
    this._done = 0;
    this._showProgress();
    this._running = null;
  }

  _showProgress() {
    const { progress, progressBar, progressText } = this._els;
    const total = this._pending;
    if (!total) {
      progress.hidden = true;
      return;
    }
    progress.hidden = false;
    const done = Math.min(this._done, total);
    progressBar.max = total;
    progressBar.value = done;
    progressText.textContent = `probed ${formatCount(done)} / ${formatCount(total)}`;
  }

  _notice(text) {
    this._els.notice.textContent = text;
  }

  _showLoadError(err) {
    const s = this._els.status;
    s.className = 'status error';
    s.setAttribute('role', 'alert');
    s.replaceChildren(h('strong', null, err.message), err.detail ? h('span', { class: 'detail' }, err.detail) : null);
    this.dataset.wasm = err.kind;
  }

  /** Recompute forest + XML from the core and re-render everything. */
  _update() {
    if (!this._session) return;
    this._safely(() => this._render());
  }

  /** A panic in the core (a bug) is reported and recovered from by
   *  _panicked / _rebuild; anything else is a bug here: say so. */
  _safely(fn) {
    try {
      fn();
    } catch (e) {
      if (e instanceof CorePanic) return;
      this._showLoadError(new WasmLoadError('internal', 'Internal error in the backing-chain editor; what is shown is the last good state.', String(e?.message ?? e)));
    }
  }

  /** The core panicked (every element shares its instance): say so and
   *  drop the session; _rebuild follows once a fresh instance is up. */
  _panicked(message) {
    if (this._session) graveyard.push(this._session);
    this._session = null;
    this._showPanic(message, 'Restarting the core with the last good state…');
  }

  /** A fresh instance is up: a new session from what the element keeps
   *  (each image's probe job, the backing choices; domain XML, base
   *  directory, layout and mode are plain state), then re-render. */
  async _rebuild() {
    const message = this._panicMessage;
    this._session = newSession();
    this._core = core;
    this._applyMapping();
    const snap = this._snapshot();
    this._meta.clear();
    try {
      await this._restore(snap);
      this._showPanic(message, 'The core was restarted; the page goes on from the last good state.');
      this.dataset.wasm = 'recovered';
    } catch (e) {
      this._showPanic(message, `The core was restarted but the images could not be read again (${e?.message ?? e}). Reload the page to start again.`);
    }
  }

  _unrecoverable(message, e) {
    this._showPanic(message, `The core could not be restarted (${e?.message ?? e}). Reload the page to start again.`);
  }

  _showPanic(message, what) {
    this._panicMessage = message;
    const s = this._els.status;
    s.className = 'status error';
    s.setAttribute('role', 'alert');
    s.replaceChildren(h('strong', null, 'Internal error in the backing-chain core (a bug). '), h('span', { class: 'detail panic' }, message), h('span', { class: 'detail' }, what));
    this.dataset.wasm = 'panic';
  }

  _render() {
    this._forest = this._session.forest();
    this._park();
    let out = null;
    let xmlError = null;
    const text = this._domainText;
    if (text.trim()) {
      try {
        out = this._session.xml(text, this._options());
        this._goodDomain = text;
      } catch (e) {
        if (e instanceof CorePanic) throw e;
        xmlError = { message: String(e?.message ?? e), position: typeof e?.position === 'number' ? e.position : null };
      }
    } else {
      this._goodDomain = '';
    }
    if (!out) {
      try {
        out = this._session.xml(this._goodDomain || null, this._options());
      } catch (e) {
        if (e instanceof CorePanic) throw e;
        out = { xml: '', diagnostics: [] };
        xmlError ??= { message: String(e?.message ?? e), position: null };
      }
    }
    this._xmlError = xmlError;
    this._output = out;
    this._renderTree();
    this._renderDetails();
    this._renderXml();
    this._renderParse();
    this._renderChains();
    const diags = this._renderDiagnostics();
    if (out.xml !== this._lastXml) {
      this._lastXml = out.xml;
      this.dispatchEvent(new CustomEvent('change', { detail: out.xml, bubbles: true, composed: true }));
    }
    this.dispatchEvent(new CustomEvent('diagnostics', { detail: diags, bubbles: true, composed: true }));
  }

  // ---- building the shadow DOM ----------------------------------------

  _build(root) {
    const id = this._id;
    const els = {};
    els.status = h('div', { class: 'status', role: 'status', 'aria-live': 'polite' }, 'Loading the WebAssembly module…');
    els.fileInput = h('input', { type: 'file', multiple: true, class: 'sr-only', tabindex: '-1', 'aria-hidden': 'true' });
    els.dirInput = h('input', { type: 'file', multiple: true, webkitdirectory: true, class: 'sr-only', tabindex: '-1', 'aria-hidden': 'true' });
    els.fileInput.addEventListener('change', () => {
      this.addFiles(els.fileInput.files);
      els.fileInput.value = '';
    });
    els.dirInput.addEventListener('change', () => {
      this.addFiles(els.dirInput.files);
      els.dirInput.value = '';
    });
    els.progressBar = h('progress', { max: '1', value: '0', 'aria-label': 'Probing images' });
    els.progressText = h('span', { 'aria-live': 'polite' });
    els.progress = h('div', { class: 'progress', hidden: true }, els.progressBar, els.progressText);
    els.notice = h('p', { class: 'hint', 'aria-live': 'polite' });
    els.drop = h(
      'section',
      { class: 'drop', 'aria-label': 'Add disk images' },
      h('p', null, h('strong', null, 'Drop disk images, folders or a domain XML here')),
      h('p', { class: 'hint' }, 'Only the headers are read (a few KiB per image, however large); nothing leaves this browser.'),
      h(
        'div',
        { class: 'buttons' },
        h('button', { type: 'button', class: 'primary', part: 'button', onclick: () => els.fileInput.click() }, 'Choose files…'),
        h('button', { type: 'button', part: 'button', onclick: () => els.dirInput.click() }, 'Choose a folder…'),
        h('button', { type: 'button', part: 'button', onclick: () => this.clear() }, 'Clear images'),
        (els.undo = h('button', { type: 'button', disabled: true, 'aria-keyshortcuts': 'Control+Z', onclick: () => this.undo() }, 'Undo')),
        (els.redo = h('button', { type: 'button', disabled: true, 'aria-keyshortcuts': 'Control+Shift+Z Control+Y', onclick: () => this.redo() }, 'Redo')),
      ),
      els.progress,
      els.notice,
      els.fileInput,
      els.dirInput,
    );
    // Undo / redo from the keyboard (text fields keep their own undo).
    this.addEventListener('keydown', (ev) => {
      if (this.readonly || !(ev.ctrlKey || ev.metaKey) || ev.altKey) return;
      const t = ev.composedPath()[0];
      if (t instanceof HTMLTextAreaElement || (t instanceof HTMLInputElement && t.type === 'text')) return;
      const k = ev.key.toLowerCase();
      if (k === 'z' && !ev.shiftKey) this.undo();
      else if ((k === 'z' && ev.shiftKey) || k === 'y') this.redo();
      else return;
      ev.preventDefault();
    });
    // Drag & drop on the whole element.
    this.addEventListener('dragover', (ev) => {
      if (this.readonly || !ev.dataTransfer) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = 'copy';
      els.drop.classList.add('over');
    });
    this.addEventListener('dragleave', (ev) => {
      if (ev.target === this || !this.contains(ev.relatedTarget)) els.drop.classList.remove('over');
    });
    this.addEventListener('drop', (ev) => {
      els.drop.classList.remove('over');
      if (this.readonly || !ev.dataTransfer) return;
      ev.preventDefault();
      // Dropped text (a domain XML dragged from another window) becomes the domain XML.
      const hasFiles = [...(ev.dataTransfer.types ?? [])].includes('Files');
      const text = hasFiles ? '' : ev.dataTransfer.getData('text/plain');
      if (!hasFiles) {
        if (text.trim().startsWith('<')) this.domainXml = text;
        else if (/^[[{]/.test(text.trim())) this._pasteJson(text);
        else if (text.trim()) this._notice('Dropped text is not XML: drop disk images or a domain XML.');
        return;
      }
      // collectDrop grabs every item synchronously, before any await.
      const pending = collectDrop(ev.dataTransfer);
      pending.then((entries) => this._addEntries(entries)).catch((e) => this._notice(`The drop could not be read: ${e.message}`));
    });

    els.tree = h('ul', { role: 'tree', 'aria-label': 'Backing chains, top to base', id: `${id}-tree` });
    els.tree.addEventListener('keydown', (ev) => this._treeKey(ev));
    els.empty = h('p', { class: 'empty' }, 'No images yet. Drop qcow2 (or other) disk images — top, middle and base layers — or a whole folder, and their chains appear here, top first.');
    els.details = h('div', { class: 'details', 'aria-live': 'polite' });
    const forest = h('section', { class: 'forest', 'aria-labelledby': `${id}-fh` }, h('h2', { id: `${id}-fh` }, 'Backing chains'), els.empty, els.tree, els.details);

    els.layoutRadios = ['nested', 'flat'].map((v) =>
      h('input', {
        type: 'radio',
        name: `${id}-layout`,
        value: v,
        checked: v === 'nested',
        onchange: (ev) => {
          if (ev.target.checked) this.layout = v;
        },
      }),
    );
    const seg = h(
      'fieldset',
      { class: 'seg' },
      h('legend', { class: 'sr-only' }, 'Layout of <backingStore>'),
      h('label', null, els.layoutRadios[0], h('span', null, 'Nested (libvirt)')),
      h('label', null, els.layoutRadios[1], h('span', null, 'Flat (proposal)')),
    );
    els.modeRadios = ['populate', 'validate'].map((v) =>
      h('input', {
        type: 'radio',
        name: `${id}-mode`,
        value: v,
        checked: v === 'populate',
        onchange: (ev) => {
          if (ev.target.checked) this.mode = v;
        },
      }),
    );
    const modeSeg = h(
      'fieldset',
      { class: 'seg mode' },
      h('legend', { class: 'sr-only' }, 'Mode'),
      h('label', { title: 'Disks without a chain get it from the images; chains in the XML are kept' }, els.modeRadios[0], h('span', null, 'Populate')),
      h('label', { title: 'Compare each chain in the XML with the images, layer by layer' }, els.modeRadios[1], h('span', null, 'Validate')),
    );
    els.copyXml = h('button', { type: 'button', onclick: () => this._copyXml() }, 'Copy');
    els.download = h('button', { type: 'button', onclick: () => this._downloadXml() }, 'Download');
    els.flatNote = h('p', { class: 'note', hidden: true }, 'The flat form (<alias name parent> on a list of <backingStore>) is a proposal: libvirt does not accept it today. Use the nested form with virsh.');
    els.xmlStale = h('p', { class: 'note', hidden: true }, 'The domain XML has an error: showing the last valid result.');
    els.xmlCode = h('code', null);
    els.xmlPre = h('pre', { class: 'xml', tabindex: '0', 'aria-label': 'Resulting XML' }, els.xmlCode);
    const output = h(
      'section',
      { class: 'output', 'aria-labelledby': `${id}-xh` },
      h('div', { class: 'toolbar' }, h('h2', { id: `${id}-xh` }, 'XML'), h('span', { class: 'spacer' }), modeSeg, seg, els.copyXml, els.download),
      els.flatNote,
      els.xmlStale,
      els.xmlPre,
    );

    els.domain = h('textarea', { id: `${id}-dom`, spellcheck: false, placeholder: "<domain type='kvm'>…<disk type='file' device='disk'>…<source file='/var/lib/libvirt/images/top.qcow2'/>…</disk>…</domain>" });
    let timer = null;
    els.domain.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => this._setDomain(els.domain.value), 250);
    });
    // Pasting qemu-img JSON adds its images instead of replacing the domain XML.
    els.domain.addEventListener('paste', (ev) => {
      const text = ev.clipboardData?.getData('text/plain') ?? '';
      if (/^[[{]/.test(text.trim()) && !els.domain.value.trim().startsWith('<')) {
        ev.preventDefault();
        this._pasteJson(text);
      }
    });
    els.parse = h('p', { class: 'parse', 'aria-live': 'polite' });
    els.gotoError = h('button', { type: 'button', hidden: true, onclick: () => this._gotoError() }, 'Go to the error');
    els.baseDir = h('input', { type: 'text', id: `${id}-base`, placeholder: '/var/lib/libvirt/images', spellcheck: false });
    els.baseDir.addEventListener('change', () => {
      this.baseDir = els.baseDir.value;
    });
    const domain = h(
      'section',
      { class: 'domain', 'aria-labelledby': `${id}-dh` },
      h('h2', { id: `${id}-dh` }, h('label', { for: `${id}-dom` }, 'Domain XML')),
      h('p', { class: 'hint meta' }, 'Paste or drop a libvirt domain (or <disk>) XML: the disk whose source file name matches a dropped top image gets its chain. Leave empty for bare <disk> elements. Pasting or dropping the output of qemu-img info --backing-chain --output=json adds its images.'),
      els.domain,
      h('div', { class: 'field' }, els.parse, els.gotoError),
      h(
        'div',
        { class: 'field' },
        h('label', { for: `${id}-base` }, 'Base directory'),
        els.baseDir,
        h('span', { class: 'meta' }, 'turns dropped names into absolute paths (default: the directory of the disk’s source)'),
      ),
    );

    els.chainsBody = h('div', { class: 'chains-body' });
    els.chainsNote = h('p', { class: 'hint meta' });
    els.replace = h('button', { type: 'button', class: 'primary edit-only', hidden: true, onclick: () => this.replaceWithImages() }, 'Replace with what the images say');
    els.chainsError = h('p', { class: 'edit-error', role: 'alert', hidden: true });
    const chains = h(
      'section',
      { class: 'chains', 'aria-labelledby': `${id}-ch` },
      h('div', { class: 'toolbar' }, h('h2', { id: `${id}-ch` }, 'Chains in the XML'), h('span', { class: 'spacer' }), els.replace),
      els.chainsNote,
      els.chainsError,
      els.chainsBody,
    );
    els.diagList = h('ul', null);
    els.diagEmpty = h('p', { class: 'empty' }, 'No diagnostics.');
    const diags = h('section', { class: 'diags', 'aria-labelledby': `${id}-gh` }, h('h2', { id: `${id}-gh` }, 'Diagnostics'), els.diagEmpty, els.diagList);

    els.root = h('div', { class: 'root', part: 'root' }, els.status, els.drop, h('div', { class: 'main' }, forest, output), chains, domain, diags);
    root.append(els.root);
    this._els = els;
  }

  // ---- chains in the XML: validate view and edits ----------------------

  _pasteJson(text) {
    this.addQemuImgJson(text).then(
      (names) => this._notice(`${names.length} image${names.length === 1 ? '' : 's'} from qemu-img JSON.`),
      (e) => this._notice(`qemu-img JSON: ${e.message}`),
    );
  }

  /** The document edits apply to: the domain XML with the chains the images
   *  give written in (nested), or the bare disks (wrapped in a domain when
   *  there are several). `null` when there is no disk. */
  _effectiveDoc() {
    const out = this._session.xml(this._goodDomain || null, { ...this._options('nested'), mode: 'populate' });
    let doc = out.xml;
    if (this._goodDomain) return doc;
    const n = (doc.match(/^<disk /gm) ?? []).length;
    if (!n) return null;
    if (n > 1) {
      const body = doc.replace(/^(?=.)/gm, '    ');
      doc = `<domain type='kvm'>\n  <name>backing-chain</name>\n  <memory unit='KiB'>524288</memory>\n  <os>\n    <type arch='x86_64'>hvm</type>\n  </os>\n  <devices>\n${body}  </devices>\n</domain>\n`;
    }
    return doc;
  }

  /** Main path of a described disk (layers, terminator excluded). */
  static _mainPath(disk) {
    const out = [];
    let cur = null;
    const seen = new Set();
    for (;;) {
      const n = disk.layers.findIndex((l) => (l.parent ?? null) === cur);
      if (n < 0 || seen.has(n) || !disk.layers[n].type) return out;
      seen.add(n);
      out.push(disk.layers[n]);
      cur = n;
    }
  }

  /** Per disk of the document edits apply to (validate: of the domain XML):
   *  the diff with the images, its description and seclabels; once per render. */
  _view() {
    if (this._chainView !== undefined) return this._chainView;
    this._chainView = null;
    try {
      const doc = this._mode === 'validate' && this._goodDomain ? this._goodDomain : this._effectiveDoc();
      if (doc) this._chainView = { doc, diff: this._session.diff(doc, this._options('nested')), desc: describeXml(doc), labels: seclabels(doc) };
    } catch (e) {
      if (e instanceof CorePanic) throw e;
      this._els.chainsError.hidden = false;
      this._els.chainsError.textContent ||= String(e?.message ?? e); // an edit's refusal first
    }
    return this._chainView;
  }

  _renderChains() {
    const { chainsBody, chainsNote, replace, chainsError } = this._els;
    const validate = this._mode === 'validate';
    this._diskSeen?.disconnect();
    // Many disks: a group is rendered near the screen, or at once if it was
    // on screen or has the focus or the edit form.
    const disks = (this._output?.xml.match(/<disk[\s/>]/g) ?? []).length;
    const lazy = disks > 2 * DISK_GROUP;
    chainsError.hidden = !this._editError;
    chainsError.textContent = this._editError ? `The edit was refused: ${this._editError}` : '';
    this._chainView = undefined;
    const view = lazy ? null : this._view();
    replace.hidden = !(validate && this._output?.mismatch);
    chainsNote.textContent = !view && !lazy
      ? 'No disk yet: drop images or give a domain XML.'
      : validate
        ? 'Validate: each chain as the XML states it, next to what the image headers say; differences are marked.'
        : 'Each disk’s chain as the result states it. Edit a layer, insert or remove one, end the chain, set its seclabel: the domain XML keeps your chain from then on (it is trusted, not repopulated).';
    // Keep the keyboard focus across the re-render (the same control, else its disk),
    // so that Ctrl+Z right after an edit still reaches the element.
    const active = this.shadowRoot.activeElement;
    let keep = null;
    if (active && chainsBody.contains(active) && !active.closest('form')) {
      keep = { disk: active.closest('[data-disk]')?.dataset.disk, depth: active.closest('tr[data-depth]')?.dataset.depth, act: active.dataset.act, term: active.closest('.terminator') ? 1 : 0 };
    } else if (active && chainsBody.contains(active)) {
      keep = { disk: active.closest('[data-disk]')?.dataset.disk };
    }
    if (lazy) {
      const now = new Set(this._groupsShown);
      for (const d of [keep?.disk, this._editing?.disk]) if (d != null) now.add(Math.floor(d / DISK_GROUP));
      const shown = (this._groupsShown = new Set());
      this._diskSeen = new IntersectionObserver(
        (entries) =>
          this._safely(() => {
            for (const { target, isIntersecting } of entries) {
              const g = Number(target.dataset.group);
              if (!isIntersecting) shown.delete(g);
              else {
                shown.add(g);
                if (!target.dataset.filled) this._fillGroup(target, g);
              }
            }
          }),
        { rootMargin: '100% 0px' },
      );
      chainsBody.replaceChildren(
        ...Array.from({ length: Math.ceil(disks / DISK_GROUP) }, (_, g) => {
          const box = h('div', { class: 'disk-group', 'data-group': g });
          if (now.has(g)) this._fillGroup(box, g);
          this._diskSeen.observe(box);
          return box;
        }),
      );
    } else if (!view) {
      chainsBody.replaceChildren();
      return;
    } else chainsBody.replaceChildren(...view.diff.map((d) => this._diskView(d, view.desc[d.disk], validate)));
    if (keep && !this._editing) {
      const disk = chainsBody.querySelector(`[data-disk="${Number(keep.disk) || 0}"]`) ?? chainsBody.querySelector('[data-disk]');
      let target = null;
      if (disk && keep.term) target = disk.querySelector('.terminator input');
      else if (disk && keep.act === 'append') target = disk.querySelector('button[data-act=append]');
      else if (disk && keep.act && keep.depth) target = disk.querySelector(`tr[data-depth="${Number(keep.depth)}"] button[data-act="${keep.act.replace(/[^a-z-]/g, '')}"]`);
      target ??= disk?.querySelector('h3');
      target?.focus();
    }
  }

  /** Renders group `g` of the disks (counted with any `<disk` in comments: never fewer). */
  _fillGroup(box, g) {
    const view = this._view();
    box.dataset.filled = '1';
    if (view) box.replaceChildren(...view.diff.slice(g * DISK_GROUP, (g + 1) * DISK_GROUP).map((d) => this._diskView(d, view.desc[d.disk], this._mode === 'validate')));
  }

  _diskView(d, desc, validate) {
    const layers = desc ? BackingChainEditor._mainPath(desc) : [];
    const labels = this._chainView.labels?.[d.disk] ?? [];
    const labelText = (l) => `seclabel ${l.model ?? '?'}${l.relabel ? ` relabel=${l.relabel}` : ''}${l.label != null ? ` label=${l.label}` : ''}${l.others ? ` (+${l.others} more)` : ''}`;
    const bad = d.rows.some((r) => r.differs.some((x) => x === 'type' || x === 'place' || x === 'format' || x === 'depth'));
    let status = '';
    if (validate) {
      if (!d['has-chain']) status = 'no <backingStore> in the XML: libvirt probes the images';
      else if (!d.matched) status = 'no image matches the disk source: not validated';
      else status = bad ? 'differs from the images' : 'matches the images';
    }
    const ed = this._editing?.disk === d.disk ? this._editing : null;
    const head = h('tr', null, h('th', { scope: 'col' }, 'Depth'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Source'), h('th', { scope: 'col' }, 'Format'), validate ? h('th', { scope: 'col' }, 'The images say') : null, h('th', { scope: 'col', class: 'edit-only' }, 'Edit'));
    const rows = [];
    for (const r of d.rows) {
      const x = r.xml;
      const m = r.images;
      // Differences are marked in validate mode only (populate keeps the XML's chain as it is).
      const diff = new Set(validate ? r.differs : []);
      const cell = (field, text, label) => h('td', { class: diff.has(field) ? 'differs' : null, 'data-field': field, 'data-label': label }, text ?? '—');
      const imgText = m ? `${m.type ?? ''} ${m.place}${m.format ? ` (${m.format})` : ''}` : diff.has('depth') ? 'no such layer: the chain ends above' : diff.has('unverified') ? 'not followed that far' : '—';
      const actions = x
        ? h(
            'td',
            { class: 'edit-only actions' },
            h('button', { type: 'button', 'data-act': 'edit', 'aria-label': `Edit layer ${r.depth} of ${d.name}`, onclick: () => this._startEdit(d.disk, r.depth, 'edit') }, 'Edit'),
            h('button', { type: 'button', 'data-act': 'insert', 'aria-label': `Insert a layer above layer ${r.depth} of ${d.name}`, onclick: () => this._startEdit(d.disk, r.depth, 'insert') }, 'Insert above'),
            h('button', { type: 'button', 'data-act': 'remove', 'aria-label': `Remove layer ${r.depth} of ${d.name}`, onclick: () => this._tryEdit({ op: 'remove-layer', disk: d.disk, depth: r.depth }) }, 'Remove'),
            h('button', { type: 'button', 'data-act': 'seclabel', 'aria-label': `Seclabel of layer ${r.depth} of ${d.name}`, onclick: () => this._startEdit(d.disk, r.depth, 'seclabel') }, 'Seclabel'),
          )
        : h('td', { class: 'edit-only' });
      rows.push(
        h(
          'tr',
          { 'data-depth': String(r.depth), class: validate && r.differs.length ? 'row-differs' : null },
          h('td', { class: 'depth', 'data-label': 'Layer' }, String(r.depth)),
          cell('type', x?.type, 'Type'),
          h(
            'td',
            { class: diff.has('place') ? 'differs' : null, 'data-field': 'place', 'data-label': 'Source' },
            x?.place ?? '—',
            ...(labels[r.depth] ?? []).map((l) => h('div', { class: 'seclabel meta' }, labelText(l))),
          ),
          cell('format', x?.format, 'Format'),
          validate ? h('td', { class: r.differs.length ? 'differs images' : 'images', 'data-differs': r.differs.join(' '), 'data-label': 'The images say' }, imgText) : null,
          actions,
        ),
      );
      if (ed && ed.depth === r.depth) rows.push(h('tr', { class: 'form-row' }, h('td', { colspan: validate ? '6' : '5' }, this._editForm(d, ed, layers[r.depth - 1], labels[r.depth] ?? []))));
    }
    const term = h('input', {
      type: 'checkbox',
      checked: d['xml-terminated'],
      disabled: this.readonly,
      onchange: (ev) => this._tryEdit({ op: 'set-terminator', disk: d.disk, on: ev.target.checked }),
    });
    const termDiff = validate && d.matched && d['has-chain'] && d['xml-terminated'] !== d['images-terminated'];
    const foot = h(
      'div',
      { class: 'chain-foot' },
      h('label', { class: termDiff ? 'differs terminator' : 'terminator' }, term, d.rows.some((r) => r.xml) ? ` The chain ends after layer ${d.rows.filter((r) => r.xml).length} (<backingStore/>)` : ' The disk has no backing image (<backingStore/>)', validate && d.matched ? ` — the images: ${d['images-terminated'] ? 'it ends' : 'not known to end'}` : ''),
      h('button', { type: 'button', class: 'edit-only', 'data-act': 'append', onclick: () => this._startEdit(d.disk, d.rows.filter((r) => r.xml).length + 1, 'insert') }, 'Add a layer at the end'),
    );
    const n = d.rows.filter((r) => r.xml).length;
    const tail = ed && ed.depth === n + 1 ? this._editForm(d, ed, null) : null;
    return h(
      'div',
      { class: `disk${bad && validate ? ' bad' : ''}`, 'data-disk': String(d.disk), 'data-name': d.name },
      h('h3', { tabindex: '-1' }, d.name, status ? h('span', { class: `badge ${bad ? 'error' : ''}` }, status) : null),
      h('div', { class: 'table-wrap' }, h('table', { class: 'chain' }, h('thead', null, head), h('tbody', null, rows))),
      foot,
      tail,
    );
  }

  _startEdit(disk, depth, kind) {
    this._editing = { disk, depth, kind };
    this._editError = null;
    this._renderChains();
    this._els.chainsBody.querySelector('form.edit input, form.edit select')?.focus();
  }

  _tryEdit(op) {
    try {
      this.edit(op);
    } catch (e) {
      if (e instanceof CorePanic) return; // reported, and the core restarts
      this._editError = String(e?.message ?? e).replace(/^XML error at byte \d+: /, '');
      this._renderChains();
    }
  }

  _editForm(d, ed, layer, labels = []) {
    const form = this._editFormInner(d, ed, layer, labels);
    // Escape closes the form.
    form.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Escape') return;
      ev.preventDefault();
      this._editing = null;
      this._renderChains();
    });
    return form;
  }

  _editFormInner(d, ed, layer, labels) {
    const id = `${this._id}-f`;
    const cancel = h('button', { type: 'button', onclick: () => { this._editing = null; this._renderChains(); } }, 'Cancel');
    if (ed.kind === 'seclabel') {
      const model = h('select', { id: `${id}-model`, name: 'model' }, ...['selinux', 'dac', 'apparmor'].map((m) => h('option', { value: m }, m)));
      const relabel = h('select', { id: `${id}-relabel`, name: 'relabel' }, h('option', { value: 'yes' }, 'yes'), h('option', { value: 'no' }, 'no'), h('option', { value: '' }, '(not set)'));
      const label = h('input', { type: 'text', id: `${id}-label`, name: 'label', spellcheck: false, placeholder: 'system_u:object_r:svirt_image_t:s0:c1,c2 (empty: no <label>)' });
      // Prefill from the seclabel of the chosen model, when the layer has one.
      const fill = () => {
        const cur = labels.find((l) => l.model === model.value);
        relabel.value = cur ? (cur.relabel ?? '') : 'yes';
        label.value = cur?.label ?? '';
      };
      if (labels[0]?.model && ['selinux', 'dac', 'apparmor'].includes(labels[0].model)) model.value = labels[0].model;
      model.addEventListener('change', fill);
      fill();
      const form = h(
        'form',
        { class: 'edit seclabel', 'aria-label': `Seclabel of layer ${ed.depth} of ${d.name}` },
        h('div', { class: 'field' }, h('label', { for: model.id }, 'Model'), model, h('label', { for: relabel.id }, 'Relabel'), relabel),
        h('div', { class: 'field' }, h('label', { for: label.id }, 'Label'), label),
        h(
          'div',
          { class: 'buttons' },
          h('button', { type: 'submit', class: 'primary' }, 'Apply'),
          h('button', { type: 'button', 'data-act': 'remove-seclabel', onclick: () => this._tryEdit({ op: 'remove-seclabel', disk: d.disk, depth: ed.depth, model: model.value }) }, 'Remove this model’s seclabel'),
          cancel,
        ),
        h('p', { class: 'hint meta' }, 'Only the seclabel of this model changes; its other children and the other seclabels are kept.'),
      );
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        this._tryEdit({
          op: 'set-seclabel',
          disk: d.disk,
          depth: ed.depth,
          seclabel: { model: model.value, relabel: relabel.value === '' ? null : relabel.value === 'yes', label: label.value === '' ? null : label.value },
        });
      });
      return form;
    }
    const src = layer?.source ?? {};
    const type = h('select', { id: `${id}-type`, name: 'type' }, ...['file', 'block', 'dir', 'network', 'volume', 'nvme'].map((t) => h('option', { value: t }, t)));
    type.value = ed.kind === 'edit' ? (layer?.type ?? 'file') : 'file';
    const v = (x) => (ed.kind === 'edit' ? x ?? '' : '');
    const path = h('input', { type: 'text', id: `${id}-path`, name: 'path', spellcheck: false, value: v(src.path), placeholder: '/var/lib/libvirt/images/base.qcow2' });
    const protocol = h('select', { id: `${id}-proto`, name: 'protocol' }, ...['nbd', 'iscsi', 'rbd', 'gluster', 'nfs', 'http', 'https', 'ftp', 'ftps', 'ssh', 'sheepdog', 'vxhs', 'tftp'].map((t) => h('option', { value: t }, t)));
    if (ed.kind === 'edit' && src.protocol) protocol.value = src.protocol;
    const name = h('input', { type: 'text', id: `${id}-name`, name: 'name', spellcheck: false, value: v(src.name), placeholder: 'pool/image, export, iqn…/1' });
    const hostsText = (src.hosts ?? []).map((x) => (x.socket ? x.socket : `${x.name ?? ''}${x.port ? `:${x.port}` : ''}`)).join(', ');
    const hosts = h('input', { type: 'text', id: `${id}-hosts`, name: 'hosts', spellcheck: false, value: v(hostsText), placeholder: 'host:port, host2:port (or /path/to/socket)' });
    const format = h('select', { id: `${id}-format`, name: 'format' }, ...(ed.kind === 'edit' ? [h('option', { value: '' }, '(unchanged)')] : []), ...['qcow2', 'raw', 'qed', 'vmdk', 'vpc', 'vhdx', 'vdi', 'luks', 'parallels', 'qcow', 'cloop', 'dmg', 'bochs'].map((t) => h('option', { value: t }, t)));
    format.value = ed.kind === 'edit' ? (layer?.format ?? '') : 'qcow2';
    const local = h('div', { class: 'field' }, h('label', { for: path.id }, 'Path'), path);
    const net = h('div', { class: 'field net' }, h('label', { for: protocol.id }, 'Protocol'), protocol, h('label', { for: name.id }, 'Name'), name, h('label', { for: hosts.id }, 'Hosts'), hosts);
    // volume (pool, volume, mode) and nvme (PCI address, namespace, managed):
    // the core keeps these in `extras`; an empty choice writes nothing.
    const extra = Object.fromEntries(ed.kind === 'edit' ? src.extras ?? [] : []);
    const fields = {}; // key → its input or select, read on submit
    const input = (key, label, more) => {
      const el = (fields[key] = h('input', { type: 'text', id: `${id}-${key}`, name: key, spellcheck: false, value: extra[key] ?? '', ...more }));
      return [h('label', { for: el.id }, label), el];
    };
    const choice = (key, label, values) => {
      const el = (fields[key] = h('select', { id: `${id}-${key}`, name: key }, ...['', ...values].map((t) => h('option', { value: t }, t || '(none)'))));
      el.value = extra[key] ?? '';
      return [h('label', { for: el.id }, label), el];
    };
    const vol = h('div', { class: 'field net' }, ...input('pool', 'Pool'), ...input('volume', 'Volume'), ...choice('mode', 'Mode', ['host', 'direct']));
    const nvme = h('div', { class: 'field net' }, ...input('pci', 'PCI address', { placeholder: '0000:01:00.0' }), ...input('namespace', 'Namespace', { inputmode: 'numeric', placeholder: '1' }), ...choice('managed', 'Managed', ['yes', 'no']));
    const groups = { network: net, volume: vol, nvme };
    const sync = () => {
      for (const [k, g] of Object.entries(groups)) g.hidden = type.value !== k;
      local.hidden = type.value in groups;
    };
    type.addEventListener('change', sync);
    sync();
    const title = ed.kind === 'edit' ? `Edit layer ${ed.depth} of ${d.name}` : `New layer at depth ${ed.depth} of ${d.name}`;
    const form = h(
      'form',
      { class: 'edit layer', 'aria-label': title },
      h('h4', null, title),
      h('div', { class: 'field' }, h('label', { for: type.id }, 'Type'), type, h('label', { for: format.id }, 'Format'), format),
      local,
      net,
      vol,
      nvme,
      h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, ed.kind === 'edit' ? 'Apply' : 'Insert'), cancel),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const layerSpec = { type: type.value, format: format.value === '' ? null : format.value };
      if (type.value === 'network') {
        layerSpec.protocol = protocol.value;
        layerSpec.name = name.value || null;
        layerSpec.hosts = hosts.value
          .split(/[,\s]+/)
          .filter(Boolean)
          .map((x) => {
            if (x.startsWith('/')) return { transport: 'unix', socket: x };
            const m = /^(.*?)(?::(\d+))?$/.exec(x);
            return { name: m[1], port: m[2] ? Number(m[2]) : null };
          });
      } else if (type.value === 'volume' || type.value === 'nvme') {
        const v = Object.fromEntries(Object.entries(fields).map(([k, el]) => [k, el.value.trim() || null]));
        if (type.value === 'volume') Object.assign(layerSpec, { pool: v.pool, volume: v.volume, mode: v.mode });
        else Object.assign(layerSpec, { pci: v.pci, namespace: v.namespace === null ? null : Number(v.namespace), managed: v.managed === null ? null : v.managed === 'yes' });
      } else layerSpec.path = path.value;
      this._tryEdit({ op: ed.kind === 'edit' ? 'set-layer' : 'insert-layer', disk: d.disk, depth: ed.depth, layer: layerSpec });
    });
    return form;
  }

  // ---- tree ------------------------------------------------------------

  /** The layer a chain diagnostic is about: the core says (`image`); else the top. */
  _ownerOf(diag, layers) {
    if (Number.isInteger(diag.image) && layers.includes(diag.image)) return diag.image;
    const f = this._forest;
    const re = /'([^']*)'/g;
    for (const m of diag.message.matchAll(re)) {
      const i = layers.find((l) => f.images[l].filename === m[1]);
      if (i !== undefined) return i;
    }
    return layers[0];
  }

  _renderTree() {
    const f = this._forest;
    const tree = this._els.tree;
    // Only a large set skips layout of what is off screen (content-visibility):
    // small ones stay fully laid out (find-in-page, innerText, printing).
    this._els.root.classList.toggle('many', f.images.length > MANY_IMAGES);
    const focusedKey = this.shadowRoot.activeElement?.dataset?.key;
    tree.replaceChildren();
    this._els.empty.hidden = f.images.length > 0;
    tree.hidden = f.images.length === 0;
    if (!f.images.length) return;
    const selectedExists = f.images.some((im) => im.filename === this._selected);
    if (!selectedExists) this._selected = null;
    const items = [];
    const all = document.createDocumentFragment();
    f.chains.forEach((chain, ci) => {
      // Diagnostics of this chain, attached to the layer they name.
      const perLayer = new Map();
      for (const d of chain.diagnostics) {
        const o = this._ownerOf(d, chain.layers);
        if (!perLayer.has(o)) perLayer.set(o, []);
        perLayer.get(o).push(d);
      }
      let parentGroup = all;
      chain.layers.forEach((idx, depth) => {
        const key = `${ci}/${depth}`;
        const item = this._treeItem(idx, depth + 1, key, perLayer.get(idx) ?? [], depth === 0 ? chain : null);
        // Every layer has children: the next layer, or how the chain ends.
        this._setOpen(item, !this._collapsed.has(key));
        parentGroup.append(item);
        items.push(item);
        const group = h('ul', { role: 'group' });
        item.append(group);
        parentGroup = group;
      });
      // How the chain ends.
      const end = this._endItem(chain, chain.layers.length + 1, `${ci}/end`);
      parentGroup.append(end);
      items.push(end);
    });
    tree.append(all);
    // Roving tabindex: the focused, else the selected, else the first item.
    const target = items.find((i) => i.dataset.key === focusedKey) ?? items.find((i) => i.getAttribute('aria-selected') === 'true') ?? items[0];
    for (const i of items) i.tabIndex = i === target ? 0 : -1;
    if (focusedKey && target) target.focus();
  }

  _treeItem(idx, level, key, diags, chain) {
    const f = this._forest;
    const img = f.images[idx];
    const selected = img.filename === this._selected;
    const sizeText = img['virtual-size'] !== undefined ? humanSize(img['virtual-size']) : null;
    const counts = { error: 0, warning: 0, info: 0 };
    for (const d of [...diags, ...(img.diagnostics ?? [])]) counts[d.severity] = (counts[d.severity] ?? 0) + 1;
    const users = f.overlays[idx] ?? [];
    const row = h(
      'div',
      { class: 'row' },
      h('span', { class: 'twisty', 'aria-hidden': 'true' }),
      h('span', { class: 'name' }, img.filename),
      img.error ? h('span', { class: 'badge error' }, 'unreadable') : h('span', { class: 'badge fmt' }, img.format),
      sizeText ? h('span', { class: 'meta' }, sizeText) : null,
      h('span', { class: 'meta' }, `read ${humanSize(img['bytes-read'])}`),
      users.length > 1
        ? h(
            'button',
            {
              type: 'button',
              class: 'badge info shared',
              title: 'a shared base: show or hide all its overlays',
              'aria-expanded': String(this._openShared.has(img.filename)),
              onclick: (ev) => {
                ev.stopPropagation();
                if (this._openShared.has(img.filename)) this._openShared.delete(img.filename);
                else this._openShared.add(img.filename);
                this._renderTree();
              },
            },
            `shared by ${users.length} overlays`,
          )
        : null,
      img.identity ? h('span', { class: 'meta identity' }, Object.entries(img.identity).map(([k, v]) => `${k} ${v}`).join(', ')) : null,
      chain ? h('span', { class: `badge ${chain.status === 'ok' ? '' : 'error'}` }, chain.status === 'ok' ? `${chain.layers.length} layer${chain.layers.length > 1 ? 's' : ''}` : chain.status) : null,
      ...['error', 'warning'].filter((s) => counts[s]).map((s) => h('span', { class: `badge ${s}` }, `${counts[s]} ${s}${counts[s] > 1 ? 's' : ''}`)),
    );
    const label = `${img.filename}, ${img.error ? 'unreadable' : img.format}${sizeText ? `, ${sizeText}` : ''}${counts.error ? `, ${counts.error} errors` : ''}`;
    const item = h('li', { role: 'treeitem', 'aria-level': String(level), 'aria-selected': String(selected), 'aria-label': label, 'data-key': key, 'data-image': String(idx) }, row);
    row.addEventListener('click', (ev) => {
      ev.stopPropagation();
      if (ev.target.classList.contains('twisty')) this._toggle(item);
      this._select(idx, item);
    });
    const data = this._dataText(idx);
    if (data) item.append(h('div', { class: 'meta datafile' }, `data file: ${data}`));
    for (const d of [...(img.diagnostics ?? []), ...diags]) item.append(this._diagView(d));
    if (users.length > 1 && this._openShared.has(img.filename)) {
      item.append(
        h(
          'div',
          { class: 'overlays', 'aria-label': `Overlays of ${img.filename}` },
          h('span', { class: 'meta' }, 'Overlays: '),
          ...users.flatMap((u, n) => [n ? ', ' : '', h('button', { type: 'button', class: 'linkish', onclick: (ev) => { ev.stopPropagation(); this._select(u); } }, f.images[u].filename)]),
        ),
      );
    }
    return item;
  }

  /** qcow2 data files: image index → [name, the file's name in the set or undefined]. */
  _dataFiles() {
    const f = this._forest;
    const names = [...f.images.map((o) => o.filename), ...this._parked.keys()];
    const out = new Map();
    f.images.forEach((im, i) => {
      const n = im['format-specific']?.data?.['data-file'];
      if (typeof n !== 'string') return;
      const p = n.startsWith('/') ? n : im.filename.replace(/[^/]*$/, '') + n;
      out.set(i, [n, names.find((x) => x === p) ?? names.find((x) => p.endsWith(`/${x}`))]);
    });
    return out;
  }

  /** A dropped data file leaves the session (no chain, no <disk>) while an image names it; it is probed again when none does. */
  _park() {
    const f = this._forest;
    for (const n of this._parked.keys()) if (!this._meta.has(n)) this._parked.delete(n);
    const used = new Set([...this._dataFiles().values()].map((d) => d[1]));
    const park = f.images.filter((im, j) => used.has(im.filename) && f.links[j].kind === 'none' && !f.overlays[j]?.length && this._meta.get(im.filename)?.job.reader);
    for (const im of park) {
      this._parked.set(im.filename, im.error ? 'unreadable' : im.format);
      this._session.remove(im.filename);
    }
    for (const n of this._parked.keys()) {
      if (used.has(n)) continue;
      this._parked.delete(n);
      this._probe([this._meta.get(n).job], { record: false });
    }
    if (park.length) this._forest = this._session.forest();
    this._data = this._dataFiles();
  }

  _dataText(idx) {
    const d = this._data?.get(idx);
    return d && `${d[0]} (${d[1] === undefined ? 'not among the dropped files' : this._parked.get(d[1]) ?? 'also a layer'})`;
  }

  _endItem(chain, level, key) {
    const f = this._forest;
    const last = chain.layers[chain.layers.length - 1];
    const link = f.links[last];
    let text;
    let bad = true;
    // How the walk ended (the status is the first problem, maybe higher up).
    switch (chain.end) {
      case 'ok':
        text = 'end of chain — the base has no backing file (terminator <backingStore/>)';
        bad = false;
        break;
      case 'missing':
        text = `missing: ${link?.resolved ?? '?'} (not among the dropped files)`;
        break;
      case 'loop':
        text = `loop: back to ${f.images[link?.index]?.filename ?? '?'}`;
        break;
      case 'remote':
        text = `remote source, not opened: ${link?.source?.protocol ?? link?.source?.type ?? ''} ${link?.source?.name ?? link?.source?.path ?? ''}`;
        bad = false;
        break;
      default:
        text = `chain stops here: ${chain.end}`;
    }
    const item = h('li', { role: 'treeitem', class: `end${bad ? ' bad' : ''}`, 'aria-level': String(level), 'aria-selected': 'false', 'data-key': key }, h('div', { class: 'row' }, h('span', { class: 'twisty', 'aria-hidden': 'true' }), text));
    return item;
  }

  _diagView(d) {
    const fix = d.fix
      ? h(
          'div',
          { class: 'fix' },
          h('code', null, d.fix),
          h(
            'button',
            {
              type: 'button',
              'aria-label': `Copy the command: ${d.fix}`,
              onclick: async (ev) => {
                ev.stopPropagation();
                const ok = await copyText(d.fix, this.shadowRoot);
                ev.target.textContent = ok ? 'Copied' : 'Copy failed';
                setTimeout(() => (ev.target.textContent = 'Copy'), 1500);
              },
            },
            'Copy',
          ),
        )
      : null;
    return h('div', { class: `diag ${d.severity}`, 'data-code': d.code }, h('span', { class: 'sev', title: d.severity }, `${SEVERITY_ICON[d.severity] ?? ''} ${d.severity}`), h('span', { class: 'msg' }, d.message), fix);
  }

  _visibleItems() {
    return [...this._els.tree.querySelectorAll('li[role=treeitem]')].filter((li) => {
      for (let p = li.parentElement?.closest('li[role=treeitem]'); p; p = p.parentElement?.closest('li[role=treeitem]')) {
        if (p.getAttribute('aria-expanded') === 'false') return false;
      }
      return true;
    });
  }

  _focusItem(li) {
    for (const i of this._els.tree.querySelectorAll('li[role=treeitem]')) i.tabIndex = -1;
    li.tabIndex = 0;
    li.focus();
  }

  _toggle(li, open) {
    if (!li.hasAttribute('aria-expanded')) return;
    const now = li.getAttribute('aria-expanded') === 'true';
    const next = open ?? !now;
    this._setOpen(li, next);
    if (next) this._collapsed.delete(li.dataset.key);
    else this._collapsed.add(li.dataset.key);
  }

  /** A tree item's expanded state: its ARIA attribute and its arrow. */
  _setOpen(li, open) {
    li.setAttribute('aria-expanded', String(open));
    const tw = li.querySelector(':scope > .row > .twisty');
    if (tw) tw.textContent = open ? '▾' : '▸';
  }

  _treeKey(ev) {
    const li = ev.target.closest('li[role=treeitem]');
    if (!li) return;
    const items = this._visibleItems();
    const i = items.indexOf(li);
    let handled = true;
    switch (ev.key) {
      case 'ArrowDown':
        if (i + 1 < items.length) this._focusItem(items[i + 1]);
        break;
      case 'ArrowUp':
        if (i > 0) this._focusItem(items[i - 1]);
        break;
      case 'Home':
        this._focusItem(items[0]);
        break;
      case 'End':
        this._focusItem(items[items.length - 1]);
        break;
      case 'ArrowRight':
        if (li.getAttribute('aria-expanded') === 'false') this._toggle(li, true);
        else if (li.getAttribute('aria-expanded') === 'true') this._focusItem(li.querySelector(':scope > ul > li[role=treeitem]'));
        break;
      case 'ArrowLeft': {
        if (li.getAttribute('aria-expanded') === 'true') this._toggle(li, false);
        else {
          const parent = li.parentElement.closest('li[role=treeitem]');
          if (parent) this._focusItem(parent);
        }
        break;
      }
      case 'Enter':
      case ' ':
        if (li.dataset.image !== undefined) this._select(Number(li.dataset.image), li);
        break;
      default:
        handled = false;
    }
    if (handled) {
      ev.preventDefault();
      ev.stopPropagation();
    }
  }

  _select(idx, li) {
    const img = this._forest.images[idx];
    this._selected = img?.filename ?? null;
    for (const i of this._els.tree.querySelectorAll('li[role=treeitem]')) {
      i.setAttribute('aria-selected', String(i.dataset.image !== undefined && this._forest.images[Number(i.dataset.image)]?.filename === this._selected));
    }
    if (!li) li = this._els.tree.querySelector(`li[data-image="${idx}"]`);
    if (li) {
      // Open the ancestors so the selected node shows.
      for (let p = li.parentElement?.closest('li[role=treeitem]'); p; p = p.parentElement?.closest('li[role=treeitem]')) this._toggle(p, true);
      this._focusItem(li);
    }
    this._renderDetails();
  }

  _renderDetails() {
    const box = this._els.details;
    const f = this._forest;
    const idx = f.images.findIndex((im) => im.filename === this._selected);
    if (idx < 0) {
      box.replaceChildren(f.images.length ? h('p', { class: 'meta' }, 'Select an image (click, or arrow keys and Enter) to see its details.') : '');
      return;
    }
    const img = f.images[idx];
    const link = f.links[idx];
    const meta = this._meta.get(img.filename);
    const rows = [];
    const add = (k, v) => {
      if (v !== undefined && v !== null && v !== '') rows.push(h('dt', null, k), h('dd', null, v));
    };
    add('File', img.filename);
    if (img.error) add('Error', img.error);
    add('Format', img.format);
    if (img['virtual-size'] !== undefined) add('Virtual size', `${humanSize(img['virtual-size'])} (${formatCount(img['virtual-size'])} bytes)`);
    if (meta && meta.size >= 0) add('File size', `${humanSize(meta.size)} (${formatCount(meta.size)} bytes)`);
    if (img['cluster-size'] !== undefined) add('Cluster size', humanSize(img['cluster-size']));
    add('Backing name (as written)', img['backing-filename'] ?? (img.error ? undefined : '— none (a base)'));
    if (link?.kind === 'image') add('Resolved to', `${link.resolved} → ${f.images[link.index].filename}`);
    else if (link?.kind === 'missing') add('Resolved to', `${link.resolved} (missing)`);
    else if (link?.kind === 'remote') add('Resolved to', `remote: ${JSON.stringify(link.source)}`);
    else if (link?.kind === 'unparsed') add('Resolved to', `cannot parse: ${link.error}`);
    if (img['backing-filename'] !== undefined) {
      add('Backing format (recorded)', img['backing-filename-format'] ?? '— not recorded');
      add('Backing format (detected)', link?.kind === 'image' ? (f.images[link.index].format ?? 'unreadable') : 'unknown (not dropped)');
    }
    add('Data file', this._dataText(idx));
    if (img.identity) add('Identity', Object.entries(img.identity).map(([k, v]) => `${k}: ${v}`).join(', '));
    if (img.encrypted) add('Encrypted', 'yes');
    if (img['dirty-flag'] !== undefined) add('Dirty', img['dirty-flag'] ? 'yes' : 'no');
    add('Bytes read', `${formatCount(img['bytes-read'])} bytes${meta ? ` in ${meta.reads} read${meta.reads === 1 ? '' : 's'}` : ''}`);
    const users = f.overlays[idx] ?? [];
    if (users.length) {
      add(
        users.length > 1 ? `Overlays (${users.length})` : 'Overlay',
        h(
          'span',
          null,
          users.flatMap((u, n) => [n ? ', ' : '', h('button', { type: 'button', class: 'linkish', onclick: () => this._select(u) }, f.images[u].filename)]),
        ),
      );
    }
    const remove = h(
      'button',
      { type: 'button', class: 'edit-only', onclick: () => this.removeImage(img.filename) },
      'Remove from the set',
    );
    // Reparent: the user's choice of backing image overrides every match.
    const pick = h(
      'select',
      { id: `${this._id}-backing`, 'aria-describedby': `${this._id}-backing-hint` },
      h('option', { value: '' }, 'as its header says'),
      ...f.images.filter((o, i) => i !== idx).map((o) => h('option', { value: o.filename }, o.filename)),
    );
    pick.value = this._mapping.get(img.filename) ?? '';
    pick.addEventListener('change', () => this.setBacking(img.filename, pick.value || null));
    const reparent = h(
      'div',
      { class: 'field edit-only' },
      h('label', { for: pick.id }, 'Backing image'),
      pick,
      h('span', { class: 'meta', id: `${this._id}-backing-hint` }, this._mapping.has(img.filename) ? 'your choice (overrides the header’s name)' : 'choose among the known images to reparent'),
    );
    box.replaceChildren(h('h3', null, img.filename), h('dl', null, rows), reparent, h('div', { class: 'field' }, remove));
  }

  // ---- XML pane --------------------------------------------------------

  _renderXml() {
    const xml = this._output?.xml ?? '';
    const code = this._els.xmlCode;
    this._xmlSeen?.disconnect();
    const lit = this._xmlLit ?? new Map(); // highlighted pieces, by text
    this._xmlLit = null;
    if (!xml) code.replaceChildren('(no images and no domain XML yet)');
    else if (xml.split('\n', 4 * XML_PIECE + 1).length <= 4 * XML_PIECE) code.replaceChildren(highlightXml(xml));
    else {
      // All the text at once (find, selection); highlighted near view, the
      // pieces highlighted before are kept (no flicker after an edit).
      const now = (this._xmlLit = new Map());
      const show = (p) => {
        now.set(p.textContent, p);
        p.replaceChildren(highlightXml(p.textContent));
        p.lit = true;
      };
      const pieces = xmlPieces(xml, XML_PIECE).map((text) => {
        const old = lit.get(text);
        lit.delete(text);
        if (old) {
          now.set(text, old);
          return old;
        }
        const piece = h('span', { class: 'piece' }, text);
        piece.style.setProperty('--lines', text.split('\n').length);
        return piece;
      });
      if (!now.size) show(pieces[0]); // a new result shows its top
      code.replaceChildren(...pieces);
      this._xmlSeen = whenNear(pieces.filter((p) => !p.lit), show, this._els.xmlPre);
    }
    this._els.flatNote.hidden = this._layout !== 'flat';
    this._els.xmlStale.hidden = !this._xmlError;
    this._els.copyXml.disabled = !xml;
    this._els.download.disabled = !xml;
  }

  async _copyXml() {
    const ok = await copyText(this._output?.xml ?? '', this.shadowRoot);
    this._els.copyXml.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => (this._els.copyXml.textContent = 'Copy'), 1500);
  }

  _downloadXml() {
    const blob = new Blob([this._output?.xml ?? ''], { type: 'application/xml' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: this._goodDomain ? 'domain.xml' : 'disks.xml', class: 'offscreen' });
    this.shadowRoot.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  _renderParse() {
    const { parse, domain, gotoError } = this._els;
    const e = this._xmlError;
    if (e) {
      let where = '';
      if (e.position !== null) {
        const p = bytePosition(this._domainText, e.position);
        where = `line ${p.line}, column ${p.column}: `;
        this._errorIndex = p.index;
      } else this._errorIndex = null;
      parse.className = 'parse error';
      parse.setAttribute('role', 'alert');
      parse.textContent = `${where}${where ? e.message.replace(/^XML error at byte \d+: /, '') : e.message}`;
      domain.setAttribute('aria-invalid', 'true');
      gotoError.hidden = this._errorIndex === null;
    } else {
      parse.className = 'parse ok';
      parse.removeAttribute('role');
      parse.textContent = this._domainText.trim() ? 'The domain XML is well-formed.' : 'No domain XML: the result is bare <disk> elements, one per chain.';
      domain.removeAttribute('aria-invalid');
      gotoError.hidden = true;
    }
  }

  _gotoError() {
    const ta = this._els.domain;
    if (this._errorIndex === null) return;
    ta.focus();
    ta.setSelectionRange(this._errorIndex, Math.min(this._errorIndex + 1, ta.value.length));
  }

  // ---- diagnostics list -----------------------------------------------

  /** Written paths from relative image names: relative, or absolute by a guessed directory. */
  _pathDiags() {
    const from = new Map();
    for (const im of this._forest.images) if (!im.filename.startsWith('/')) from.set(im.filename, this._meta.get(im.filename)?.job.from ?? 'the folder the files came from');
    if (this._baseDir.trim() || !from.size) return [];
    if (this._given?.[0] !== this._goodDomain) this._given = [this._goodDomain, fileAttrs(this._goodDomain)];
    const given = this._given[1];
    const per = new Map(); // origin → directories ('' = relative)
    for (const v of fileAttrs(this._output?.xml ?? '')) {
      if (given.has(v)) continue;
      for (let i = 0; i >= 0; i = v.indexOf('/', i) + 1 || -1) {
        const o = from.get(v.slice(i));
        if (o === undefined) continue;
        if (!per.has(o)) per.set(o, new Set());
        per.get(o).add(i ? v.slice(0, i - 1) || '/' : '');
        break;
      }
    }
    return [...per].map(([o, dirs]) => {
      const abs = [...dirs].filter(Boolean);
      return {
        code: 'dropped-paths',
        severity: 'warning',
        message: `Paths are relative to ${o} and were ${abs.length ? `made absolute with the base directory '${abs.join("', '")}' (the directory of the disk’s source)` : 'written relative (libvirt needs absolute paths)'}; set the base directory to where the images live on the host.`,
      };
    });
  }

  _renderDiagnostics() {
    const f = this._forest;
    const seen = new Set();
    const all = [];
    const push = (d, image) => {
      const k = `${d.code}\u0000${d.message}`;
      if (seen.has(k)) return;
      seen.add(k);
      all.push({ ...d, image });
    };
    f.images.forEach((img, i) => (img.diagnostics ?? []).forEach((d) => push(d, img.filename)));
    for (const ch of f.chains) for (const d of ch.diagnostics) push(d, f.images[this._ownerOf(d, ch.layers)].filename);
    for (const d of f.diagnostics) push(d, null);
    for (const d of this._output?.diagnostics ?? []) push(d, null);
    for (const d of this._pathDiags()) push(d, null);
    const order = { error: 0, warning: 1, info: 2 };
    all.sort((a, b) => (order[a.severity] ?? 3) - (order[b.severity] ?? 3));
    const list = this._els.diagList;
    const item = (d) =>
      h(
        'li',
        { 'data-code': d.code },
        h(
          'button',
          {
            type: 'button',
            onclick: () => {
              const i = f.images.findIndex((im) => im.filename === d.image);
              if (i >= 0) this._select(i);
            },
          },
          h('span', { class: `sev ${d.severity}` }, `${SEVERITY_ICON[d.severity] ?? ''} ${d.severity}`),
          h('span', null, d.message, ' ', h('span', { class: 'code' }, `(${d.code})`)),
        ),
      );
    this._diagSeen?.disconnect();
    if (all.length <= 4 * DIAG_GROUP) list.replaceChildren(...all.map(item));
    else {
      const groups = Array.from({ length: Math.ceil(all.length / DIAG_GROUP) }, (_, g) => h('li', { class: 'pending', 'aria-hidden': 'true', 'data-group': g }));
      list.replaceChildren(...groups);
      this._diagSeen = whenNear(groups, (li) => {
        const g = Number(li.dataset.group);
        li.replaceWith(...all.slice(g * DIAG_GROUP, (g + 1) * DIAG_GROUP).map(item));
      });
    }
    this._els.diagEmpty.hidden = all.length > 0;
    return all;
  }
}

// Define the element on import unless a host already did (double-import safe).
if (!customElements.get(TAG)) customElements.define(TAG, BackingChainEditor);
