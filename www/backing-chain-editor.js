// @ts-check
// <backing-chain-editor>: drop disk images and a libvirt domain XML, see the
// backing chains, take the XML with <backingStore> away.
//
//   import { register } from './backing-chain-editor.js';
//   register({ wasmUrl: '/path/to/backing_chain_bg.wasm' }); // optional
//   // and metaWasmUrl: backing_chain_meta_bg.wasm (the edits, audit and
//   // metadata walks, fetched when the user edits or asks; default: beside wasmUrl)
//   <backing-chain-editor domain-xml="…" layout="nested|flat" readonly>
//
// This file is the element: its attributes, public methods, events and the
// wiring of its parts (types: backing-chain-editor.d.ts). The state is an
// EditorModel (editor-model.js); each section of the shadow DOM is a view
// with a render(model) (editor-tree.js, editor-xml.js, editor-domain.js,
// editor-chains.js, editor-diagnostics.js); the wasm and panic recovery are
// editor-wasm.js. The element owns no parsing: the core says what the views
// show (main paths, disk counts, how paths were written, data files, which
// layer a diagnostic is about).

import { CorePanic, WasmLoadError, bury, errorText, loadWasm, needsRebuild, prefetchMeta, setMetaWasmUrl, setWasmUrl, unwatch, wasmModule, watch } from './editor-wasm.js';
import { EditorModel } from './editor-model.js';
import { blobReader, collectDrop, filesFromList, isDocument, readText, warmProbeWorker } from './reader.js';
import { h, formatCount } from './render.js';
import { CSS } from './editor-style.js';
import { TreeView } from './editor-tree.js';
import { XmlView } from './editor-xml.js';
import { DomainView } from './editor-domain.js';
import { ChainsView } from './editor-chains.js';
import { DiagnosticsView } from './editor-diagnostics.js';
import { SummaryView } from './editor-summary.js';

export { CorePanic, WasmLoadError, loadWasm };

const TAG = 'backing-chain-editor';
/** Attribute values as the element takes them: anything else is the default. @param {unknown} v */
const asLayout = (v) => (v === 'flat' ? 'flat' : 'nested');
/** @param {unknown} v */
const asMode = (v) => (v === 'validate' ? 'validate' : 'populate');
/** From this many images on, rows off screen are not laid out. */
const MANY_IMAGES = 200;
/**
 * Past this many images, and with no domain XML (whose disks the tree
 * names), a render is split over tasks: the forest and the tree's first
 * screenful at once, the tree's other chains in its own later tasks, then
 * the XML, then the views made from it (the summary, the XML pane, the
 * chains in the XML, the diagnostics) and the events. A 1,000-image drop
 * shows its tree without waiting for the XML of 600 disks, and no one task
 * does both.
 */
const SPLIT_RENDER_AT = MANY_IMAGES;
/** Tasks the XML waits for the tree's later tasks, at most. */
const TREE_WAIT_TASKS = 64;
/** The XML waits this long at most for the frame that shows the tree (ms). */
const FRAME_WAIT_MS = 100;
/** The probe count is written at most this often (ms) while images are probed. */
const PROGRESS_MS = 50;

/**
 * The element's events (bubbling, composed). `edit` is cancelable: a
 * listener's `preventDefault()` vetoes the user's edit. The unprefixed
 * `change` and `diagnostics` of earlier versions still fire (deprecated).
 */
export const EVENTS = Object.freeze({
  change: `${TAG}-change`,
  diagnostics: `${TAG}-diagnostics`,
  edit: `${TAG}-edit`,
  progress: `${TAG}-progress`,
});

/**
 * Define the element (once). `wasmUrl` locates backing_chain_bg.wasm for hosts
 * that bundle this module into a classic script, where import.meta.url
 * cannot; `metaWasmUrl` the second module, backing_chain_meta_bg.wasm
 * (the chain edits, audit, allocation, map, check: fetched when the user
 * applies an edit, sets a backing a domain XML's chain follows, audits or
 * asks for an allocation, a check or a map, and started early when they
 * open an edit form or a row's menu; a page that only shows data never
 * fetches it; by default beside `wasmUrl`, else in pkg/ beside this
 * module). Call before the first element is connected.
 * @param {{ wasmUrl?: string | URL, metaWasmUrl?: string | URL, name?: string }} [options]
 */
export function register({ wasmUrl: url, metaWasmUrl, name = TAG } = {}) {
  if (url) setWasmUrl(url);
  if (metaWasmUrl) setMetaWasmUrl(metaWasmUrl);
  if (!customElements.get(name)) customElements.define(name, name === TAG ? BackingChainEditor : class extends BackingChainEditor {});
  return /** @type {typeof BackingChainEditor} */ (customElements.get(name));
}

/** @type {CSSStyleSheet | null} */
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
    const id = (this._id = `bce${++uid}`);
    this._lastXml = '';
    /** Renders started: a later part of a split render runs only for the latest. */
    this._renders = 0;
    /** When the progress count was last shown (it is shown at most every PROGRESS_MS). */
    this._progressShown = -Infinity;
    /** @type {(v: BackingChainEditor) => void} */
    let ok = () => {};
    /** @type {(e: unknown) => void} */
    let ko = () => {};
    /** @type {Promise<BackingChainEditor>} with the element once the wasm is loaded; rejects with a WasmLoadError */
    this.ready = new Promise((a, b) => {
      ok = a;
      ko = b;
    });
    this.ready.catch(() => {});
    this._ready = { ok, ko };
    this._model = new EditorModel({
      changed: () => this._update(),
      progress: (done, total) => this._showProgress(done, total),
      history: (u, r) => {
        this._els.undo.disabled = !u;
        this._els.redo.disabled = !r;
      },
      restored: () => {
        this._domain.sync(this._model);
        this._xml.sync(this._model);
        this._chains.settle();
      },
    });
    this._model.ready = this.ready;
    this._watcher = {
      panicked: (/** @type {string} */ message) => this._panicked(message),
      unrecoverable: (/** @type {string} */ message, /** @type {unknown} */ e) => this._showPanic(message, `The core could not be restarted (${errorText(e)}). Reload the page to start again.`),
      rebuild: () => this._rebuild(),
    };
    const m = this._model;
    /** @type {import('./editor-alloc.js').AllocView | null} the details' allocation section, once editor-alloc.js is loaded */
    this._alloc = null;
    /** @type {Promise<import('./editor-alloc.js').AllocView> | undefined} */
    this._allocLoading = undefined;
    // The details' allocation section (editor-alloc.js, loaded when first shown) rides along with the tree's actions.
    const treeActions = { remove: (/** @type {string} */ n) => this.removeImage(n), setBacking: (/** @type {string} */ i, /** @type {string | null} */ b) => void this.setBacking(i, b).catch((e) => e instanceof CorePanic || this._notice(`The backing of ${i} was not changed: ${errorText(e)}`)), alloc: (/** @type {string} */ n) => this._allocEl(n), prefetch: () => void (m.goodDomain && !this.readonly && prefetchMeta()) };
    this._tree = new TreeView(id, m, treeActions);
    this._xml = new XmlView(id, m, { setLayout: (v) => (this.layout = asLayout(v)), setMode: (v) => (this.mode = asMode(v)) });
    this._domain = new DomainView(id, { setDomain: (t) => m.setDomain(t), setBaseDir: (v) => (this.baseDir = v), pasteJson: (t) => this._pasteJson(t) });
    this._chains = new ChainsView(id, m, { edit: (op) => this._userEdit(op), replace: () => this.replaceWithImages(), readonly: () => this.readonly, safely: (fn) => this._safely(fn) });
    const select = (/** @type {string | null} */ image) => {
      const i = m.forest?.images.findIndex((im) => im.filename === image) ?? -1;
      if (i >= 0) this._tree.select(i);
    };
    this._diags = new DiagnosticsView(id, { select });
    this._summary = new SummaryView(id, {
      filter: (q) => {
        this._tree.setFilter(q);
        this._tree.filter.input.focus();
      },
      select,
    });
    const root = this.attachShadow({ mode: 'open' });
    root.adoptedStyleSheets = [styleSheet()];
    this._els = this._build(root);
  }

  connectedCallback() {
    const m = this._model;
    if (this._started) {
      if (m.session) watch(this._watcher);
      if (m.session && needsRebuild(m.session)) this._rebuild();
      return;
    }
    this._started = true;
    // A microtask later, so that a register({ wasmUrl }) right after the
    // import still applies.
    Promise.resolve().then(loadWasm).then(
      () => {
        m.start();
        if (this.isConnected) watch(this._watcher);
        this._els.status.replaceChildren();
        this._els.status.className = 'status';
        this._ready.ok(this);
        this._update();
      },
      (e) => {
        const err = e instanceof WasmLoadError ? e : new WasmLoadError('unknown', 'The WebAssembly module could not be loaded.', errorText(e));
        this._showLoadError(err);
        this._ready.ko(err);
      },
    );
  }

  disconnectedCallback() {
    unwatch(this._watcher);
  }

  /** @param {string} name @param {string | null} _old @param {string | null} value */
  attributeChangedCallback(name, _old, value) {
    if (name === 'domain-xml') this.domainXml = value ?? '';
    else if (name === 'layout') this.layout = asLayout(value);
    else if (name === 'base-dir') this.baseDir = value ?? '';
    else if (name === 'mode') this.mode = asMode(value);
    else if (name === 'readonly') this._domain.setReadonly(this.readonly);
    else if (name === 'untrusted') this._model.setUntrusted(this.untrusted);
  }

  // ---- public API ------------------------------------------------------

  get domainXml() {
    return this._model.domainText;
  }
  set domainXml(v) {
    v = v == null ? '' : String(v);
    if (this._domain.text.value !== v) this._domain.text.value = v;
    this._model.setDomain(v);
  }
  /** @returns {'nested' | 'flat'} */
  get layout() {
    return this._model.layout;
  }
  set layout(v) {
    this._model.set('layout', asLayout(v)); // from script: anything else is nested
    this._xml.sync(this._model);
  }
  /** `populate` (default) or `validate` (compare each disk's chain with the images). @returns {'populate' | 'validate'} */
  get mode() {
    return this._model.mode;
  }
  set mode(v) {
    this._model.set('mode', asMode(v));
    this._xml.sync(this._model);
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
    return this._model.baseDir;
  }
  set baseDir(v) {
    v = v == null ? '' : String(v);
    if (this._domain.baseDir.value !== v) this._domain.baseDir.value = v;
    this._model.set('baseDir', v);
    this._syncBaseDir();
  }
  /** The forest JSON from the core (images, links, chains, overlays). */
  get forest() {
    return this._model.forest;
  }

  /**
   * Focus the tree's filter box (what "/" does inside the element; a page may
   * bind its own shortcut to this). False when there is no tree to filter yet.
   */
  focusFilter() {
    if (this._tree.filter.el.hidden) return false;
    this._tree.filter.input.focus();
    this._tree.filter.input.select();
    return true;
  }

  /** Missing backing files (absolute paths) a host may add; with `untrusted`, never a flagged name. */
  missingBackings() {
    return this._model.missingBackings();
  }

  /**
   * Add files (a FileList or array of File): images are probed, an XML file becomes the domain XML.
   * @param {FileList | File[]} fileList
   */
  addFiles(fileList) {
    return this._addEntries(filesFromList(fileList));
  }

  /**
   * Add an image read through `reader(offset, length) → Promise<Uint8Array>`.
   * The reader is asked for the ranges the core asks for, one call each; with
   * `span` (65536, say), for those of one round that lie within `span` bytes
   * in one call: see `coalesce` in reader.js.
   * @param {string} name
   * @param {(offset: number, length: number) => Promise<Uint8Array>} reader
   * @param {{ size?: number, span?: number }} [options]
   */
  addImage(name, reader, { size = -1, span } = {}) {
    if (typeof reader !== 'function') throw new TypeError('addImage(name, reader): reader must be a function');
    return this._model.probe([{ name: String(name), size, reader, ...(span === undefined ? {} : { span: Math.max(0, Number(span) || 0) }) }]);
  }

  /** Add the images of a `qemu-img info --backing-chain --output=json` document. Returns their names. @param {string} text */
  addQemuImgJson(text) {
    return this._model.addQemuImgJson(String(text));
  }

  /**
   * Choose the backing image of `image` among the known images (`null`: as
   * its header says). Resolves once it is applied. When a chain the domain
   * XML states follows (it goes through `image`), that chain is written by
   * the on-demand module (loaded first if it is not yet: a WasmLoadError
   * rejects, and nothing changes).
   * @param {string} image @param {string | null} backing
   */
  setBacking(image, backing) {
    return this._model.setBacking(String(image), backing == null || backing === '' ? null : String(backing));
  }

  /**
   * Edit a disk's chain in the domain XML (the core's xml::edit operations).
   * A chain that came from the images is first written into the domain XML,
   * so it is kept (trusted) from then on. Returns the new domain XML; a
   * refused edit throws and changes nothing. An edit that makes one known
   * image back another is also a backing choice (the tree shows it), in the
   * same undo step. Resolves with the new XML once the on-demand module
   * (the edits) is loaded; rejects with a WasmLoadError when it cannot be.
   * @param {import('./backing-chain-editor').EditOp} op
   * @returns {Promise<string>}
   */
  async edit(op) {
    await this._model.loadEdits();
    const next = this._model.edit(op);
    this._model.label = { what: describeOp(op, this._chains.view?.diff?.[op.disk]?.name ?? `disk ${op.disk + 1}`), where: { disk: op.disk } };
    this._chains.settle();
    this.domainXml = next;
    this._model.label = null;
    // What the edit did in the tree, or why not, is said as well as shown.
    const fw = this._model.followed;
    if (fw && fw.domain === this._model.domainText && (fw.done.length || fw.notes.length)) {
      this._notice([fw.done.length ? `Also in the tree: ${fw.done.join('; ')}.` : '', fw.notes.length ? `Not in the tree: ${fw.notes.join('; ')}.` : ''].filter(Boolean).join(' '));
    }
    return next;
  }

  /** Validate mode: write what the images say into each disk whose chain diverges. */
  replaceWithImages() {
    const next = this._model.replacedWithImages();
    if (next === null) return false;
    this.domainXml = next;
    return true;
  }

  /** Undo the last edit (images, domain XML and its edits, base directory, backing choices; not the layout or mode: view switches). The page says what was undone and shows it. */
  undo() {
    return this._model.undo().then((c) => this._showChange('Undone', c));
  }

  /** Redo what undo() undid. */
  redo() {
    return this._model.redo().then((c) => this._showChange('Redone', c));
  }

  /** The XML for the current state (`layout` defaults to the element's). @param {{ layout?: 'nested' | 'flat' }} [options] */
  getXml({ layout } = {}) {
    return this._model.xml(layout);
  }

  /**
   * The image-store audit of the images added (and the element's domain XML,
   * when given): which VM uses which file, roles, what deleting or committing
   * a file would break, per-VM totals, a fix script and CSV. `domains` adds
   * more VMs' domain XML (several documents in one text are fine). Runs in
   * the on-demand module (loaded first when it is not yet: a
   * WasmLoadError rejects).
   * @param {Array<{ label: string, text: string }>} [domains]
   * @param {{ 'deep-chain'?: number }} [options]
   */
  audit(domains = [], options = {}) {
    return this._model.audit(domains, options);
  }

  /**
   * The allocation of one image added (data / zero / compressed /
   * unallocated bytes, extents; with `check`, what `qemu-img check` says),
   * from its metadata tables read through the reader it was added with.
   * Fires `backing-chain-editor-progress`; `signal` cancels (the promise
   * rejects with its reason and nothing more is read).
   * @param {string} image @param {{ check?: boolean, signal?: AbortSignal }} [options]
   */
  async allocation(image, { check = false, signal } = {}) {
    const src = this._source(String(image));
    const { walkImage } = await import('./editor-meta.js');
    const { layer, walk } = await walkImage(src, { check, signal, onProgress: (p) => this._emit(EVENTS.progress, { image: p.image, done: p.done, total: p.total, size: p.size }) });
    walk.free();
    return layer;
  }

  /**
   * `qemu-img check --output=json`'s figures for one image added (zero
   * figures left out, as qemu-img does), the first problems and the advised
   * repair (never run by us): `allocation(image, { check: true })`'s `check`.
   * @param {string} image @param {{ signal?: AbortSignal }} [options]
   */
  async check(image, { signal } = {}) {
    const layer = await this.allocation(image, { check: true, signal });
    if (!layer.check) throw new Error(`${image}: ${layer.format} images are not checked`);
    return layer.check;
  }

  /**
   * The chain from `top` down (as the tree shows it): `{ map, summary,
   * measure, commit, layers }` — `qemu-img map --output=json` of `top`,
   * what each layer provides, `qemu-img measure -O qcow2` of the chain
   * flattened, the bytes `qemu-img commit` of each layer copies, and each
   * layer's allocation (and check, with `check`). Progress and cancel as
   * `allocation()`.
   * @param {string} top @param {{ check?: boolean, signal?: AbortSignal }} [options]
   */
  async chainMap(top, { check = false, signal } = {}) {
    const sources = this._chainNames(String(top)).map((n) => this._source(n));
    const { walkChain } = await import('./editor-meta.js');
    return walkChain(sources, { check, signal, onProgress: (p) => this._emit(EVENTS.progress, { image: p.image, done: p.done, total: p.total, size: p.size }) });
  }

  /**
   * The details' allocation section for `name`: editor-alloc.js is imported
   * the first time one is shown (not at first paint); until then an empty
   * section stands in and is replaced once it is there.
   * @param {string} name @returns {HTMLElement}
   */
  _allocEl(name) {
    if (this._alloc) return this._alloc.el(name);
    const box = h('section', { class: 'alloc', 'aria-label': `Allocation of the chain from ${name}`, 'aria-busy': 'true' });
    const m = this._model;
    this._allocLoading ??= import('./editor-alloc.js').then(({ AllocView }) => {
      this._alloc ??= new AllocView(this._id, {
        chainMap: (top, o) => this.chainMap(top, o),
        chainOf: (top) => this._chainNames(top),
        readers: (top) => this._chainNames(top).map((n) => m.meta.get(n)?.job.reader),
      });
      return this._alloc;
    });
    this._allocLoading.then(
      (a) => {
        if (box.isConnected) box.replaceWith(a.el(name));
      },
      (e) => {
        this._allocLoading = undefined;
        box.removeAttribute('aria-busy');
        box.replaceChildren(h('p', { class: 'diag error', role: 'alert' }, `The allocation view could not be loaded: ${errorText(e)}`));
      },
    );
    return box;
  }

  /** Names of the chain from `top` down, following the links the tree shows. @param {string} top */
  _chainNames(top) {
    const f = this._model.forest;
    if (!f) throw new Error('the element is not ready');
    let i = f.images.findIndex((im) => im.filename === top);
    if (i < 0) throw new Error(`no image named ${JSON.stringify(top)} was added`);
    const names = [];
    const seen = new Set();
    while (i !== undefined && i >= 0 && !seen.has(i)) {
      seen.add(i);
      names.push(f.images[i].filename);
      const l = f.links[i];
      i = l?.kind === 'image' ? (l.index ?? -1) : -1;
    }
    return names;
  }

  /** The reader an image was added with. @param {string} name */
  _source(name) {
    const m = this._model.meta.get(name);
    if (!m) throw new Error(`no image named ${JSON.stringify(name)} was added`);
    if (!m.job.reader) throw new Error(`${name}: added from qemu-img JSON, there is nothing to read`);
    return { name, reader: m.job.reader, size: m.size };
  }

  /** Forget one image (by the name it was added with). @param {string} name */
  removeImage(name) {
    this._alloc?.forget(String(name));
    return this._model.remove(String(name));
  }

  /** Forget every image (the domain XML stays). */
  clear() {
    this._tree.reset();
    this._alloc?.reset();
    this._model.clear();
  }

  // ---- internals -------------------------------------------------------

  /**
   * Fire `type`; returns false when a listener vetoed it (cancelable only).
   * @param {string} type @param {unknown} detail
   */
  _emit(type, detail, cancelable = false) {
    return this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true, cancelable }));
  }

  /** An edit from the chains table: announced (a listener may veto it), then applied. @param {import('./backing-chain-editor').EditOp} op */
  _userEdit(op) {
    if (!this._emit(EVENTS.edit, { op }, true)) {
      this._chains.render(); // a checkbox the user ticked shows the state again
      return;
    }
    this._chains.editStarts();
    this.edit(op).catch((e) => this._chains.refused(e, op));
  }

  /** @param {Array<{ path: string, file: File | Promise<File>, from?: string }>} entries */
  async _addEntries(entries) {
    const docs = entries.filter((e) => isDocument(e.path));
    const images = entries.filter((e) => !isDocument(e.path));
    for (const d of docs.filter((x) => /\.json$/i.test(x.path))) {
      try {
        const names = await this.addQemuImgJson(await readText(await d.file));
        this._notice(`${d.path}: ${names.length} image${names.length === 1 ? '' : 's'} from qemu-img JSON.`);
      } catch (e) {
        this._notice(`${d.path}: ${errorText(e)}`);
      }
    }
    const xmlDocs = docs.filter((x) => !/\.json$/i.test(x.path));
    for (const d of xmlDocs.slice(0, 1)) {
      try {
        this.domainXml = await readText(await d.file);
      } catch (e) {
        this._notice(`${d.path}: ${errorText(e)}`);
      }
    }
    if (xmlDocs.length > 1) this._notice(`Only the first XML document is used (${xmlDocs.length} dropped).`);
    // The size (a round trip in Chromium) is asked for in the probe, among other reads.
    await this._model.probe(images.map((e) => ({ name: e.path, from: e.from, file: e.file, get size() { return Promise.resolve(e.file).then((f) => f.size); }, reader: blobReader(e.file) })));
  }

  /** Files are coming (dragged over the element, a file picker opened): start the probe worker now. */
  _warm() {
    if (this._model.worker && this._model.session) warmProbeWorker(wasmModule());
  }

  /** @param {string} text */
  _pasteJson(text) {
    this.addQemuImgJson(text).then(
      (names) => this._notice(`${names.length} image${names.length === 1 ? '' : 's'} from qemu-img JSON.`),
      (e) => this._notice(`qemu-img JSON: ${errorText(e)}`),
    );
  }

  /** @param {number} done @param {number} total */
  _showProgress(done, total) {
    const { progress, progressBar, progressText } = this._els;
    if (!total) {
      progress.hidden = true;
      this._progressShown = -Infinity;
      return;
    }
    // Called once per image: the count is shown when a probe run starts
    // and ends, and at most every PROGRESS_MS between (a 1,000-image drop
    // spent ~25 ms of the page's thread writing it 1,000 times).
    const now = performance.now();
    if (done > 0 && done < total && now - this._progressShown < PROGRESS_MS) return;
    this._progressShown = now;
    progress.hidden = false;
    done = Math.min(done, total);
    progressBar.max = total;
    progressBar.value = done;
    progressText.textContent = `probed ${formatCount(done)} / ${formatCount(total)}`;
  }

  /** @param {string} text */
  _notice(text) {
    this._els.notice.textContent = text;
  }

  /** @param {WasmLoadError} err */
  _showLoadError(err) {
    const s = this._els.status;
    s.className = 'status error';
    s.setAttribute('role', 'alert');
    // (A null here would be shown as the text "null": only nodes.)
    s.replaceChildren(h('strong', null, err.message), ...(err.detail ? [h('span', { class: 'detail' }, err.detail)] : []));
    this.dataset.wasm = err.kind;
  }

  /** Recompute forest + XML from the core and re-render everything. */
  _update() {
    if (!this._model.session) return;
    this._safely(() => this._render());
  }

  /**
   * A panic in the core (a bug) is reported and recovered from by
   * _panicked / _rebuild; anything else is a bug here: say so.
   * @param {() => void} fn
   */
  _safely(fn) {
    try {
      fn();
    } catch (e) {
      if (e instanceof CorePanic) return;
      this._showLoadError(new WasmLoadError('internal', 'Internal error in the backing-chain editor; what is shown is the last good state.', errorText(e)));
    }
  }

  /** The core panicked (every element shares its instance): say so and drop the session; _rebuild follows once a fresh instance is up. @param {string} message */
  _panicked(message) {
    const m = this._model;
    if (m.session) bury(m.session);
    m.session = null;
    this._showPanic(message, 'Restarting the core with the last good state…');
  }

  /** A fresh instance is up: a new session from what the model keeps (each image's probe job, the backing choices; the rest is plain state), then re-render. */
  async _rebuild() {
    const m = this._model;
    const message = String(m.panicMessage);
    m.start();
    const snap = m.snapshot();
    m.meta.clear();
    try {
      await m.restore(snap);
      this._showPanic(message, 'The core was restarted; the page goes on from the last good state.');
      this.dataset.wasm = 'recovered';
    } catch (e) {
      this._showPanic(message, `The core was restarted but the images could not be read again (${errorText(e)}). Reload the page to start again.`);
    }
  }

  /**
   * After undo/redo: say what changed (next to the Undo button) and show it
   * (its disk in "Chains in the XML", or its image in the tree).
   * @param {string} verb @param {import('./editor-model.js').Change | false} c
   */
  _showChange(verb, c) {
    if (c === false) return false;
    const { undone } = this._els;
    undone.textContent = `${verb}: ${c?.what ?? 'a change'}.`;
    const where = c?.where;
    /** @type {Element | null | undefined} */
    let target = null;
    if (where?.disk !== undefined) target = this._chains.body.querySelector(`[data-disk="${where.disk}"]`);
    else if (where?.image) target = this._tree.itemOf(this._model.forest?.images.findIndex((im) => im.filename === where.image) ?? -1);
    if (target) {
      target.scrollIntoView({ block: 'center' });
      target.classList.remove('changed');
      void (/** @type {HTMLElement} */ (target).offsetWidth);
      target.classList.add('changed');
    }
    return true;
  }

  /** The base directory next to the drop zone: asked for up front while there is no domain XML; says when paths are relative. */
  _syncBaseDir() {
    const { baseDir, baseBox, baseNote } = this._els;
    const m = this._model;
    if (baseDir.value !== m.baseDir) baseDir.value = m.baseDir;
    baseBox.hidden = !!m.goodDomain;
    const rel = (m.forest?.images ?? []).some((im) => !im.filename.startsWith('/'));
    baseNote.textContent = m.baseDir.trim()
      ? `Paths in the XML: ${m.baseDir.trim().replace(/\/+$/, '')}/<name>.`
      : rel
        ? 'Paths in the XML are relative to where the images were dropped from: libvirt needs absolute paths. Give the directory the images live in on the host.'
        : 'Where the images live on the host: dropped names become absolute paths.';
    baseNote.classList.toggle('warn', !m.baseDir.trim() && rel);
  }

  /** @param {string} message @param {string} what */
  _showPanic(message, what) {
    this._model.panicMessage = message;
    const s = this._els.status;
    s.className = 'status error';
    s.setAttribute('role', 'alert');
    s.replaceChildren(h('strong', null, 'Internal error in the backing-chain core (a bug). '), h('span', { class: 'detail panic' }, message), h('span', { class: 'detail' }, what));
    this.dataset.wasm = 'panic';
  }

  _render() {
    const m = this._model;
    const gen = ++this._renders;
    const split = (m.session?.length ?? 0) > SPLIT_RENDER_AT && !m.domainText.trim() && !m.goodDomain;
    const busy = [this._summary.el, this._xml.el, this._chains.el, this._diags.el];
    if (!split) {
      for (const el of busy) el.removeAttribute('aria-busy'); // a split render this one replaces
      m.compute();
      this._renderTree(true);
      this._renderOutput(false);
      return;
    }
    // The tree from the forest alone (no domain XML: no disk names, no
    // differences to show), then the XML once the tree has every chain.
    m.computeForest();
    this._renderTree(false);
    for (const el of busy) el.setAttribute('aria-busy', 'true');
    /** @param {() => void} fn */
    const next = (fn) => setTimeout(() => gen === this._renders && this._safely(fn), 0);
    let waited = 0;
    let painted = false;
    const xml = () => {
      if (this._tree.rest && waited++ < TREE_WAIT_TASKS) return next(xml);
      // The XML (tens of ms for hundreds of disks) after the frame that
      // shows the whole tree, not before it; a hidden page, whose frames
      // wait, goes on after FRAME_WAIT_MS.
      if (!painted) {
        painted = true;
        let go = () => {
          go = () => {};
          next(xml);
        };
        requestAnimationFrame(() => go());
        setTimeout(() => go(), FRAME_WAIT_MS);
        return;
      }
      if (!m.session) return; // the core stopped: _rebuild renders again
      m.computeXml();
      next(() => {
        for (const el of busy) el.removeAttribute('aria-busy');
        this._renderOutput(true);
      });
    };
    next(xml);
  }

  /** The tree (with the chains table before it when `withChains`: the tree shows its differences). @param {boolean} withChains */
  _renderTree(withChains) {
    const m = this._model;
    this._els.root.classList.toggle('many', (m.forest?.images.length ?? 0) > MANY_IMAGES);
    const images = m.forest?.images.length ?? 0;
    this._els.drop.classList.toggle('compact', images > 0);
    this._syncBaseDir();
    if (withChains) this._chains.render(m);
    this._tree.disks = m.diskTargets();
    this._tree.differs = this._chains.differences();
    this._tree.render(m);
  }

  /** What the XML gives: the XML pane, the chains in it (`withChains`), the domain, the diagnostics, the summary, and the events. @param {boolean} withChains */
  _renderOutput(withChains) {
    const m = this._model;
    if (withChains) this._chains.render(m);
    this._xml.render(m);
    this._domain.render(m);
    const diags = m.diagnostics();
    this._diags.render(diags);
    const chains = m.forest?.chains ?? [];
    const images = m.forest?.images.length ?? 0;
    this._summary.render(diags, { chains: chains.length, images, errorChains: this._tree.errorChains });
    const xml = m.output?.xml ?? '';
    if (xml !== this._lastXml) {
      this._lastXml = xml;
      this._emit(EVENTS.change, { xml });
      this._emit('change', xml); // deprecated alias
    }
    this._emit(EVENTS.diagnostics, { diagnostics: diags });
    this._emit('diagnostics', diags); // deprecated alias
  }

  // ---- the shadow DOM: status, drop zone, the views ----------------------

  /** @param {ShadowRoot} root */
  _build(root) {
    const status = h('div', { class: 'status', role: 'status', 'aria-live': 'polite' }, 'Loading the WebAssembly module…');
    /** @param {boolean} dir */
    const picker = (dir) => {
      const input = h('input', { type: 'file', multiple: true, webkitdirectory: dir, class: 'sr-only', tabindex: '-1', 'aria-hidden': 'true' });
      input.addEventListener('change', () => {
        if (input.files) this.addFiles(input.files);
        input.value = '';
      });
      return input;
    };
    const fileInput = picker(false);
    const dirInput = picker(true);
    const progressBar = h('progress', { max: '1', value: '0', 'aria-label': 'Probing images' });
    const progressText = h('span', { 'aria-live': 'polite' });
    const progress = h('div', { class: 'progress', hidden: true }, progressBar, progressText);
    const notice = h('p', { class: 'hint', 'aria-live': 'polite' });
    const undo = h('button', { type: 'button', disabled: true, 'aria-keyshortcuts': 'Control+Z', onclick: () => this.undo() }, 'Undo');
    const redo = h('button', { type: 'button', disabled: true, 'aria-keyshortcuts': 'Control+Shift+Z Control+Y', onclick: () => this.redo() }, 'Redo');
    const undone = h('p', { class: 'undone meta', role: 'status' });
    const baseDir = h('input', { type: 'text', id: `${this._id}-base0`, placeholder: '/var/lib/libvirt/images', spellcheck: false, 'aria-describedby': `${this._id}-base0-note` });
    baseDir.addEventListener('change', () => (this.baseDir = baseDir.value));
    const baseNote = h('span', { class: 'meta', id: `${this._id}-base0-note` });
    const baseBox = h('div', { class: 'field base edit-only' }, h('label', { for: baseDir.id }, 'Base directory on the host'), baseDir, baseNote);
    /** A picker's button: the probe worker starts while the dialog is open. @param {HTMLInputElement} input */
    const choose = (input) => () => {
      this._warm();
      input.click();
    };
    const drop = h(
      'section',
      { class: 'drop', 'aria-label': 'Add disk images' },
      h('p', { class: 'lead' }, h('strong', null, 'Drop disk images, folders or a domain XML here')),
      h('p', { class: 'hint' }, 'Only the headers are read (a few KiB of each image, in reads of up to 64 KiB, however large); nothing leaves this browser.'),
      h(
        'div',
        { class: 'buttons' },
        h('button', { type: 'button', class: 'primary', part: 'button', onclick: choose(fileInput) }, 'Choose files…'),
        h('button', { type: 'button', part: 'button', onclick: choose(dirInput) }, 'Choose a folder…'),
        h('button', { type: 'button', part: 'button', onclick: () => this.clear() }, 'Clear images'),
      ),
      baseBox,
      progress,
      notice,
      fileInput,
      dirInput,
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
      drop.classList.add('over');
      if ([...(ev.dataTransfer.types ?? [])].includes('Files')) this._warm();
    });
    this.addEventListener('dragleave', (ev) => {
      if (ev.target === this || !this.contains(/** @type {Node | null} */ (ev.relatedTarget))) drop.classList.remove('over');
    });
    this.addEventListener('drop', (ev) => {
      drop.classList.remove('over');
      if (this.readonly || !ev.dataTransfer) return;
      ev.preventDefault();
      // Dropped text (a domain XML dragged from another window) becomes the domain XML.
      const hasFiles = [...(ev.dataTransfer.types ?? [])].includes('Files');
      if (!hasFiles) {
        const text = ev.dataTransfer.getData('text/plain');
        if (text.trim().startsWith('<')) this.domainXml = text;
        else if (/^[[{]/.test(text.trim())) this._pasteJson(text);
        else if (text.trim()) this._notice('Dropped text is not XML: drop disk images or a domain XML.');
        return;
      }
      // collectDrop grabs every item synchronously, before any await.
      collectDrop(ev.dataTransfer)
        .then((entries) => this._addEntries(entries))
        .catch((e) => this._notice(`The drop could not be read: ${errorText(e)}`));
    });
    // "/" focuses the tree's filter (outside text fields).
    this.addEventListener('keydown', (ev) => {
      if (ev.key !== '/' || ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const t = ev.composedPath()[0];
      if (t instanceof HTMLTextAreaElement || t instanceof HTMLInputElement || t instanceof HTMLSelectElement) return;
      if (this.focusFilter()) ev.preventDefault();
    });
    const top = h('div', { class: 'root', part: 'root' }, status, this._summary.el, drop, h('div', { class: 'main' }, this._tree.el, this._xml.el), this._chains.el, this._domain.el, this._diags.el);
    root.append(top);
    // Undo / redo sit with the edits: in the toolbar of "Chains in the XML".
    this._chains.tools.append(undo, redo, undone);
    return { root: top, status, drop, baseDir, baseBox, baseNote, progress, progressBar, progressText, notice, undo, redo, undone };
  }
}

/** An edit in words (what undo says it undid). @param {import('./backing-chain-editor').EditOp} op @param {string} disk */
function describeOp(op, disk) {
  switch (op.op) {
    case 'set-layer':
      return `editing layer ${op.depth} of ${disk}`;
    case 'insert-layer':
      return `inserting layer ${op.depth} of ${disk}`;
    case 'remove-layer':
      return `removing layer ${op.depth} of ${disk}`;
    case 'set-terminator':
      return `${op.on ? 'ending' : 'opening'} the chain of ${disk}`;
    default:
      return `the seclabel of layer ${op.depth} of ${disk}`;
  }
}

// Define the element on import unless a host already did (double-import safe).
// @satisfies: tsc checks that the class is what backing-chain-editor.d.ts says.
if (!customElements.get(TAG)) customElements.define(TAG, /** @satisfies {typeof import('./backing-chain-editor').BackingChainEditor} */ (BackingChainEditor));
