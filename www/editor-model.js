// @ts-check
// The state of one <backing-chain-editor>, without DOM: the core's session,
// the images and how they were read, the domain XML, layout, mode, base
// directory, the user's backing choices, undo/redo, the probe queue, and what
// the core computes from them (forest, XML, diagnostics).
//
// The element calls its methods and is told through the hooks it passes:
// `changed()` after every recomputation (render), `progress(done, total)`,
// `history(canUndo, canRedo)`, `restored()` after undo/redo or when the
// model itself rewrote the domain XML (sync the inputs).
//
// One state, two views: the tree shows the images with the user's backing
// choices (`mapping`), the "Chains in the XML" table the domain XML. A table
// edit that makes a known image back another one is also a backing choice
// (`follow`, in the same undo step); a reparent (in the tree, or by such an
// edit) writes again each stated chain of the domain XML that goes through
// the image and agreed with the images down to it (`through`, `restate`).

import { CorePanic, describeXml, errorText, loadMeta, metaLoaded, newMetaSession, newSession, seclabels, settled, wasmModule, xmlEdits } from './editor-wasm.js';
import { probeMany } from './reader.js';

/**
 * @typedef {import('./backing-chain-wasm').Session} Session
 * @typedef {import('./backing-chain-editor').Diagnostic} Diagnostic
 * @typedef {import('./backing-chain-editor').Forest} Forest
 * @typedef {import('./backing-chain-editor').EditOp} EditOp
 * @typedef {{ name: string, reader?: import('./reader.js').Reader, size?: number | Promise<number>, file?: File | Promise<File>, from?: string, json?: string, span?: number }} Job a probe job (reader, `span`: reader.js `coalesce`; a dropped `file` may be probed in a worker), or images from a qemu-img JSON document (json)
 * @typedef {{ size: number, bytesRead: number, reads: number, fileBytes?: number, fileReads?: number, job: Job, chunks?: import('./reader.js').Chunk[], unreadable?: string, given?: number }} Meta `bytesRead`/`reads`: the ranges the core asked for; `fileBytes`/`fileReads`: what was read from the file for them (reader.js `probeImage`); `chunks`: the bytes the probe was given, `unreadable`: why the file could not be read (the on-demand module's session adds the same image from them: `mirror`); `given`: for an image from qemu-img JSON, when its document was given (`jsonGivenCount`: an undo gives the documents again in that order)
 * @typedef {import('./editor-wasm.js').MetaCore} MetaCore
 * @typedef {{ what: string, where?: Where } | null} Change what a recorded change was, in words, and where it shows
 * @typedef {{ disk?: number, image?: string }} Where
 * @typedef {{ domain: string, baseDir: string, mapping: Map<string, string>, images: Map<string, Meta>, change?: Change }} Snapshot
 * @typedef {import('./backing-chain-wasm').XmlOutput} Output
 * @typedef {{ changed(): void, progress(done: number, total: number): void, history(canUndo: boolean, canRedo: boolean): void, restored(): void }} Hooks
 * @typedef {{ domain: string, disk: number, pairs: Array<[string, string]>, notes: string[] }} Follow what a chain edit means in the tree: the backing choices it makes (image → backing), and why a change is not one
 * @typedef {Follow & { done: string[] }} Followed what the last chain edit did in the tree (shown while the domain XML is `domain`)
 */

const UNDO_LIMIT = 200;

/**
 * The qemu-img JSON documents the images of `metas` came from, in the order
 * they were last given to the core (`Meta.given`: an image named in several
 * documents is the one of the document given last). Undo and the on-demand
 * module's session give them again in this order.
 * @param {Iterable<Meta | undefined>} metas @returns {string[]}
 */
function documentsInOrder(metas) {
  /** @type {Map<string, number>} document → when it was last given */
  const when = new Map();
  for (const m of metas) if (m?.job.json !== undefined) when.set(m.job.json, Math.max(when.get(m.job.json) ?? 0, m.given ?? 0));
  return [...when.keys()].sort((a, b) => /** @type {number} */ (when.get(a)) - /** @type {number} */ (when.get(b)));
}

/** The on-demand module, which must be loaded (`loadEdits()` first). */
function loadedMeta() {
  const c = metaLoaded();
  if (!c) throw new Error('backing-chain-editor: the on-demand module (edits, audit) is not loaded yet');
  return c;
}

export class EditorModel {
  /** @param {Hooks} hooks */
  constructor(hooks) {
    this.hooks = hooks;
    /** @type {Session | null} */
    this.session = null;
    /** @type {Map<string, Meta>} name → how it was read, and the job to read it again */
    this.meta = new Map();
    this.domainText = '';
    /** The last domain XML the core accepted ('' for none). */
    this.goodDomain = '';
    /** @type {{ message: string, position: number | null } | null} */
    this.xmlError = null;
    /** @type {'nested' | 'flat'} */
    this.layout = 'nested';
    /** @type {'populate' | 'validate'} */
    this.mode = 'populate';
    this.baseDir = '';
    this.untrusted = false;
    /** @type {Map<string, string>} image filename → backing image filename (the user's choice) */
    this.mapping = new Map();
    /** @type {Map<string, string>} dropped data files kept out of the session: name → format */
    this.parked = new Map();
    /** @type {Forest | null} */
    this.forest = null;
    /** @type {Output | null} */
    this.output = null;
    /** @type {Map<number, [string, string | undefined]>} */
    this.data = new Map();
    /** @type {Snapshot[]} */
    this.undoStack = [];
    /** @type {Snapshot[]} */
    this.redoStack = [];
    this.restoring = false;
    /** @type {Array<{ job: Job, record: boolean }>} */
    this.jobs = [];
    /** @type {Array<{ ok: () => void, ko: (e: unknown) => void }>} */
    this.waiters = [];
    /** @type {Promise<void> | null} */
    this.running = null;
    /** Dropped files may be probed in a Web Worker (false: always on the page's thread). */
    this.worker = true;
    this.pending = 0;
    this.done = 0;
    /** @type {string | null} */
    this.panicMessage = null;
    /** @type {Promise<unknown>} resolves once the wasm is loaded (set by the element) */
    this.ready = Promise.resolve();
    /** @type {Change} what the next record() is about (set by the element for an edit) */
    this.label = null;
    /** @type {Follow | null} the backing choices of the edit edit() returned (applied when its XML is set) */
    this.pendingFollow = null;
    /** @type {Followed | null} what the last chain edit did in the tree */
    this.followed = null;
    /** Changes of the session so far: the on-demand module's session (`mirror`) is filled again when it missed one. */
    this.gen = 0;
    /** `gen` when `forest` was read from the core (the mirror takes the images' order from it when it is current). */
    this.forestGen = -1;
    /** @type {{ core: MetaCore, gen: number, session: import('./backing-chain-wasm-meta').Session } | null} */
    this.mirrored = null;
    /** qemu-img JSON documents given so far (`Meta.given`) */
    this.jsonGivenCount = 0;
  }

  /** The session and the forest, where one must exist (after start(), compute()). */
  get s() {
    return /** @type {Session} */ (this.session);
  }
  get f() {
    return /** @type {Forest} */ (this.forest);
  }

  /** A new session of the current core instance, given the mapping. */
  start() {
    this.session = newSession();
    this.applyMapping();
  }

  // ---- the on-demand module: edits, audit -----------------------------------

  /** The on-demand module's XML edits, once it is loaded (else an error: `loadEdits()` first). */
  ed() {
    return xmlEdits(loadedMeta());
  }

  /** Load the on-demand module (once; again after a failure or a panic). Rejects with a WasmLoadError. */
  loadEdits() {
    return loadMeta();
  }

  /**
   * The on-demand module's session (`audit`), holding what the
   * core's session holds: filled from what this model keeps (each image's
   * chunks, or its qemu-img JSON document, or why it was unreadable; the
   * backing choices; untrusted), in the core's order. Made again whole when
   * the core's session changed since (`gen`) or the module was restarted.
   */
  mirror() {
    const c = loadedMeta();
    const was = this.mirrored;
    if (was && was.core === c && was.gen === this.gen) return was.session;
    this.mirrored = null;
    if (was && !was.core.dead) was.session.free();
    const names = (this.forest && this.forestGen === this.gen ? this.forest : this.s.forest()).images.map((im) => im.filename);
    const ms = newMetaSession(c);
    try {
      /** @type {Map<string, number>} name → when it was added to `ms` (a name added again moves to the end) */
      const order = new Map();
      let k = 0;
      /** @param {string} n */
      const added = (n) => {
        order.delete(n);
        order.set(n, k++);
      };
      // The documents the core's images came from, replayed in the order
      // the core was given them: an image named in several documents is the
      // one of the document given last, in both sessions.
      for (const t of documentsInOrder(names.map((n) => this.meta.get(n)))) for (const n of ms.addQemuImgJson(t)) added(n);
      const want = new Set(names);
      for (const n of [...order.keys()]) {
        if (!want.has(n) || this.meta.get(n)?.job.json === undefined) {
          ms.remove(n);
          order.delete(n);
        }
      }
      for (const n of names) {
        const m = this.meta.get(n);
        if (!m || m.job.json !== undefined) continue;
        if (m.unreadable !== undefined || !m.chunks) ms.addUnreadable(n, m.unreadable ?? 'not read');
        else if (/** @type {any} */ (ms.probeQuiet(n, m.size, m.chunks)).need) throw new Error(`internal: the probe of ${n} needs more than the bytes it was given`);
        added(n);
      }
      const missing = names.filter((n) => !order.has(n));
      if (missing.length || order.size !== names.length) {
        throw new Error(`The on-demand module’s session could not be given the same images as the page’s (${missing.length ? `not: ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''}` : 'more images'}); remove and add again the qemu-img JSON documents they came from.`);
      }
      // Its images in the core's order: `orderAdded` with every image as the tail.
      const at = [...order.keys()];
      const pos = new Map(at.map((n, i) => [n, i]));
      ms.orderAdded(Uint32Array.from(names, (n) => /** @type {number} */ (pos.get(n))));
      ms.setMapping([...this.mapping]);
      ms.setUntrusted(this.untrusted);
    } catch (e) {
      if (!c.dead) ms.free();
      throw e;
    }
    this.mirrored = { core: c, gen: this.gen, session: ms };
    return ms;
  }

  // ---- undo / redo ------------------------------------------------------

  /** @returns {Snapshot} */
  snapshot() {
    return { domain: this.domainText, baseDir: this.baseDir, mapping: new Map(this.mapping), images: new Map(this.meta) };
  }

  /**
   * Remember the state before a change (not while undoing/redoing), with
   * what the change is (the caller's `label`, set just before, wins).
   * @param {string} what @param {Where} [where]
   */
  record(what = 'a change', where) {
    const label = this.label;
    this.label = null;
    this.followed = null;
    if (this.restoring || !this.session) return;
    this.undoStack.push({ ...this.snapshot(), change: label ?? { what, where } });
    if (this.undoStack.length > UNDO_LIMIT) this.undoStack.shift();
    this.redoStack = [];
    this.historyChanged();
  }

  /** Forget the last record() (the change it was for did not happen). */
  unrecord() {
    this.undoStack.pop();
    this.historyChanged();
  }

  historyChanged() {
    this.hooks.history(this.undoStack.length > 0, this.redoStack.length > 0);
  }

  /** Undo the last edit (not a view switch); resolves with what was undone, or false. @returns {Promise<Change | false>} */
  undo() {
    const snap = this.undoStack.pop();
    if (!snap) return Promise.resolve(false);
    this.redoStack.push({ ...this.snapshot(), change: snap.change });
    return this.restore(snap).then(() => snap.change ?? null);
  }

  /** @returns {Promise<Change | false>} */
  redo() {
    const snap = this.redoStack.pop();
    if (!snap) return Promise.resolve(false);
    this.undoStack.push({ ...this.snapshot(), change: snap.change });
    return this.restore(snap).then(() => snap.change ?? null);
  }

  /** @param {Snapshot} snap */
  async restore(snap) {
    this.restoring = true;
    try {
      this.domainText = snap.domain;
      this.baseDir = snap.baseDir;
      this.mapping = new Map(snap.mapping);
      this.applyMapping();
      this.hooks.restored();
      const session = this.s;
      // Images: drop what the snapshot does not have, re-probe what it had.
      /** @param {string} n @param {Meta} m */
      const same = (n, m) => snap.images.get(n)?.job === m.job;
      for (const [n, m] of [...this.meta]) {
        if (!same(n, m)) {
          this.session?.remove(n);
          this.meta.delete(n);
        }
      }
      const again = [...snap.images.values()].filter((m) => !this.meta.has(m.job.name)).map((m) => m.job);
      // Images from qemu-img JSON come back from their document. A document
      // names every image it has, and an image may be in several (or probed
      // after it was given): every document the snapshot's images came from
      // is given again, in the order they were given then, and what a
      // document takes that a probe gave later is probed again.
      if (again.some((j) => j.json !== undefined)) {
        for (const text of documentsInOrder(snap.images.values())) {
          const names = session.addQemuImgJson(text);
          for (const n of names) {
            const m = snap.images.get(n);
            if (m?.job.json === text) this.meta.set(n, m);
            else if (!m) session.remove(n);
            else if (m.job.json === undefined && this.meta.get(n) === m) {
              // A probed image kept as it was: the document took its place.
              this.meta.delete(n);
              again.push(m.job);
            }
            // (else another document given later names it, and sets it)
          }
        }
      }
      this.gen++;
      const probe = again.filter((j) => j.json === undefined);
      if (probe.length) await this.probe(probe, { record: false });
      else this.hooks.changed();
    } finally {
      this.restoring = false;
      this.historyChanged();
    }
  }

  // ---- changes ------------------------------------------------------------

  applyMapping() {
    this.session?.setMapping([...this.mapping]);
    this.session?.setUntrusted(this.untrusted);
    this.gen++;
  }

  /**
   * The domain XML. The XML of a chain edit (what edit() returned) brings its
   * backing choices with it, in the same undo step.
   * @param {string} text
   */
  setDomain(text) {
    const follow = this.pendingFollow?.domain === text ? this.pendingFollow : null;
    this.pendingFollow = null;
    if (text === this.domainText) return;
    this.record('the domain XML');
    this.domainText = text;
    if (follow) {
      this.follow(follow);
      this.domainText = follow.domain;
      this.hooks.restored();
    }
    this.hooks.changed();
  }

  /**
   * `doc` with the chains of `disks` written again from the images (as
   * "Replace with what the images say" does, for those disks only).
   * @param {string} doc @param {number[]} disks
   */
  restate(doc, disks) {
    if (!disks.length) return doc;
    const fromImages = this.s.xml(doc, { ...this.options('nested'), mode: 'validate', replace: true }).xml;
    const { adoptChain } = this.ed();
    for (const d of disks) doc = adoptChain(doc, fromImages, d);
    return doc;
  }

  /**
   * Make a chain edit's backing choices (recorded already, with the XML).
   * The core has the last word: a choice it does not follow (an image whose
   * header names no backing file, …) is taken back and said.
   * @param {Follow} fw
   */
  follow(fw) {
    const { pairs, notes, disk, domain } = fw;
    // Other disks whose stated chain goes through an image the edit
    // reparents follow too (as for a tree reparent), once the core took it.
    const through = pairs.map(([c]) => this.through(domain, c, disk));
    /** @type {string[]} */
    const done = [];
    /** @type {number[]} */
    const others = [];
    if (pairs.length) {
      for (const [c, p] of pairs) this.mapping.set(c, p);
      this.applyMapping();
      const f = this.s.forest();
      /** @param {string} n */
      const at = (n) => f.images.findIndex((im) => im.filename === n);
      pairs.forEach(([c, p], i) => {
        const link = f.links[at(c)];
        if (link.kind === 'image' && link.index === at(p)) {
          done.push(`${c} is backed by ${p}`);
          others.push(...through[i]);
        } else {
          // (A choice the core does not follow for `c` never was followed: an
          // earlier one for it was as inert, and goes too.)
          this.mapping.delete(c);
          notes.push(`${c} cannot be backed by ${p}: ${NO_CHOICE[link.kind] ?? link.kind}`);
        }
      });
      if (done.length < pairs.length) this.applyMapping();
    }
    // The same object: the chains view shows it while the domain XML is this.
    this.followed = Object.assign(fw, { done, domain: this.restate(domain, [...new Set(others)]) });
  }

  /**
   * layout, mode (view switches, not undone), baseDir (recorded): then recomputed.
   * @template {'layout' | 'mode' | 'baseDir'} K
   * @param {K} key
   * @param {EditorModel[K]} value
   */
  set(key, value) {
    if (this[key] === value) return;
    if (key === 'baseDir') this.record('the base directory');
    Object.assign(this, { [key]: value });
    this.hooks.changed();
  }

  /** @param {boolean} on */
  setUntrusted(on) {
    this.untrusted = on;
    this.applyMapping();
    this.hooks.changed();
  }

  /**
   * The user's backing choice for `image` (null: as its header says). A
   * chain the domain XML states (kept as written, trusted) follows when it
   * goes through `image` and agreed with the images down to it: the chain
   * is written again from the images (as "Replace with what the images say"
   * does), in the same undo step. One that disagreed above `image` already,
   * or has a seclabel there (a rewrite would drop it), stays as the user
   * wrote it (and is marked).
   * A chain that follows is written by the on-demand module (`adoptChain`):
   * it is loaded first when it is not yet (the promise rejects with a
   * WasmLoadError when it cannot be, and nothing changes); a choice no
   * stated chain follows does not load it.
   * @param {string} image @param {string | null} backing
   * @returns {Promise<void>}
   */
  async setBacking(image, backing) {
    const stated = this.goodDomain && this.goodDomain === this.domainText ? this.goodDomain : '';
    if (stated && (this.mapping.get(image) ?? null) !== backing && !metaLoaded() && this.through(stated, image).length) await loadMeta();
    const now = this.mapping.get(image) ?? null;
    if (now === backing) return;
    this.record(`the backing of ${image}`, { image });
    const doc = this.goodDomain === this.domainText ? this.goodDomain : '';
    const follow = doc ? this.through(doc, image) : [];
    if (backing === null) this.mapping.delete(image);
    else this.mapping.set(image, backing);
    this.applyMapping();
    const next = this.restate(doc, follow);
    if (next !== doc) {
      this.domainText = next;
      this.hooks.restored();
    }
    this.hooks.changed();
  }

  /**
   * The disks of `doc` whose stated chain goes through `image` (its source
   * or a layer) and agrees with the images down to it (type, place, format
   * of each layer), with no seclabel on those layers.
   * @param {string} doc @param {string} image @param {number} [skip] a disk left out
   * @returns {number[]}
   */
  through(doc, image, skip = -1) {
    const idx = this.f.images.findIndex((im) => im.filename === image);
    // Per disk: the image's depth in its stated chain (-1: none).
    const at = this.s.xmlImages(doc).map((w, i) => (w.stated && i !== skip ? [w.source, ...w.layers].indexOf(idx) : -1));
    if (at.every((k) => k < 0)) return [];
    const labels = seclabels(doc);
    return this.s
      .diff(doc, this.options('nested'))
      .filter((d) => {
        const k = at[d.disk];
        return k >= 0 && d.matched && !d.rows.some((r) => r.depth <= k && rowDiffers(r)) && !labels[d.disk]?.slice(1, k + 1).some((l) => l.length);
      })
      .map((d) => d.disk);
  }

  /** @param {string} text @returns {Promise<string[]>} */
  async addQemuImgJson(text) {
    await this.ready;
    await settled();
    if (!this.session) throw new CorePanic(this.panicMessage ?? 'the core is not running');
    this.record('images from qemu-img JSON');
    /** @type {string[]} */
    let names;
    try {
      names = this.session.addQemuImgJson(text);
    } catch (e) {
      this.unrecord();
      throw e;
    } finally {
      this.gen++;
    }
    const given = ++this.jsonGivenCount;
    for (const n of names) this.meta.set(n, { bytesRead: 0, reads: 0, size: -1, job: { name: n, json: text }, given });
    this.hooks.changed();
    return names;
  }

  /** @param {string} name */
  remove(name) {
    if (!this.session || !this.meta.has(name)) return false;
    this.record(`removing ${name}`);
    this.session.remove(name);
    this.gen++;
    this.meta.delete(name);
    this.hooks.changed();
    return true;
  }

  clear() {
    if (this.meta.size) this.record('clearing the images');
    this.session?.clear();
    this.gen++;
    this.meta.clear();
    this.hooks.changed();
  }

  /**
   * A chain edit: the new domain XML (not yet set: setDomain() sets it, and
   * with it the backing choices the edit makes in the tree). The on-demand
   * module must be loaded (`loadEdits()`).
   * @param {EditOp} op @returns {string}
   */
  edit(op) {
    if (!this.session) throw new Error('backing-chain-editor: the wasm module is not loaded yet (await element.ready)');
    const { adoptChain, editXml } = this.ed();
    const eff = this.effectiveDoc();
    if (!eff) throw new Error('nothing to edit: no disk');
    const base = this.goodDomain ? adoptChain(this.goodDomain, eff, op.disk) : eff;
    const next = editXml(base, op);
    this.pendingFollow = this.reparents(next, op);
    return next;
  }

  /**
   * What a chain edit means in the tree. The chain is the disk's source,
   * then its layers (as the core matches them to images: same path, else
   * the only image of that basename). Each pair the edit makes (an image
   * above, the one below) is a backing choice when both are images and the
   * tree does not show it already; else a note says why it is not a
   * reparent: a layer that is no image the page knows, an image made to end
   * the chain (removing the last layer, the terminator: the tree follows the
   * header's backing name; a choice names an image, never "none").
   * @param {string} after the domain XML the edit gives @param {EditOp} op
   * @returns {Follow}
   */
  reparents(after, op) {
    const f = this.f;
    const disk = op.disk;
    /** @param {number} i */
    const name = (i) => f.images[i].filename;
    /** @type {Follow} */
    const out = { domain: after, disk, pairs: [], notes: [] };
    const now = this.s.xmlImages(after)[disk];
    /** @type {Array<number | null>} index 0: the disk's source, k: the layer at depth k */
    const chain = [now.source, ...now.layers];
    /** @type {import('./backing-chain-wasm').DiskSummary | undefined} read when a note needs a layer's source */
    let desc;
    /** Places already said to be no image. */
    const unknown = new Set();
    /** @param {number} k the pair (chain[k] backed by chain[k + 1]) */
    const pair = (k) => {
      if (k < 0 || k + 1 >= chain.length) return;
      const c = chain[k];
      const p = chain[k + 1];
      // A place that is no image: said once. Two images: a choice, unless the
      // tree shows it already or the image would back itself (no choice: the
      // row stays marked).
      if (c === null || p === null) {
        const at = p === null ? k + 1 : k;
        desc ??= describeXml(after)[disk];
        const src = at ? desc.layers[desc.main[at - 1]]?.source : desc.source;
        if (!unknown.has(at)) out.notes.push(`${at ? `layer ${at}` : 'the disk’s source'} (${src?.path ?? src?.name ?? src?.type}) is not among the images`);
        unknown.add(at);
      } else if (c !== p && (f.links[c]?.kind !== 'image' || f.links[c].index !== p)) out.pairs.push([name(c), name(p)]);
    };
    /** The chain ends at chain[k] in the XML: the tree follows the header there. @param {number} k */
    const ends = (k) => {
      const c = chain[k];
      if (c != null && f.links[c].kind !== 'none') out.notes.push(`the XML ends the chain at ${name(c)}, but its header names ${f.images[c]['backing-filename']} (a choice cannot say none)`);
    };
    if (op.op === 'set-layer' || op.op === 'insert-layer') {
      pair(op.depth - 1);
      pair(op.depth);
    } else if (op.op === 'remove-layer') {
      if (op.depth < chain.length) pair(op.depth - 1);
      else ends(op.depth - 1);
    } else if (op.op === 'set-terminator' && op.on) ends(chain.length - 1);
    return out;
  }

  /** Validate mode: the domain XML with what the images say in each diverging disk, or null. */
  replacedWithImages() {
    if (!this.session || !this.goodDomain) return null;
    const out = this.session.xml(this.goodDomain, { ...this.options('nested'), mode: 'validate', replace: true });
    return out.xml === this.goodDomain ? null : out.xml;
  }

  // ---- the probe queue ----------------------------------------------------

  /**
   * Queue images for probing; concurrent calls are coalesced into one run
   * (one forest and one render per run, not per image). Resolves once they
   * are in the forest.
   * @param {Job[]} jobs
   * @returns {Promise<void>}
   */
  probe(jobs, { record = true } = {}) {
    if (!jobs.length) return Promise.resolve();
    /** @type {Promise<void>} */
    const done = new Promise((ok, ko) => this.waiters.push({ ok, ko }));
    this.jobs.push(...jobs.map((job) => ({ job, record })));
    this.pending += jobs.length;
    this.hooks.progress(this.done, this.pending);
    this.running ??= this.run();
    return done;
  }

  async run() {
    try {
      await this.ready;
    } catch (e) {
      for (const w of this.waiters.splice(0)) w.ko(e);
      this.jobs = [];
      this.running = null;
      return;
    }
    await Promise.resolve(); // let calls made in the same tick join this run
    while (this.jobs.length) {
      await settled();
      if (!this.session) {
        const e = new CorePanic(this.panicMessage ?? 'the core is not running');
        for (const w of this.waiters.splice(0)) w.ko(e);
        this.jobs = [];
        break;
      }
      const session = this.session;
      const waiters = this.waiters.splice(0);
      // The same name again replaces the image (last one wins).
      const batch = this.jobs.splice(0);
      if (batch.some((b) => b.record)) this.record(`adding ${batch.length} image${batch.length === 1 ? '' : 's'}`);
      const byName = new Map();
      for (const { job } of batch) byName.set(job.name, job);
      /** @type {Job[]} */
      const jobs = [...byName.values()];
      for (const j of jobs) {
        session.remove(j.name);
        this.meta.delete(j.name);
      }
      this.gen++;
      const base = this.done;
      try {
        // Only jobs with a reader are queued (images from JSON come back from their text).
        const results = await probeMany(
          session,
          /** @type {any[]} */ (jobs),
          (n) => {
            this.done = base + n;
            this.hooks.progress(this.done, this.pending);
          },
          { module: this.worker ? wasmModule() : null },
        );
        this.gen++;
        results.forEach((r, i) => this.meta.set(r.name, { bytesRead: r.bytesRead, reads: r.reads, fileBytes: r.fileBytes, fileReads: r.fileReads, size: r.size, job: jobs[i], chunks: r.chunks, unreadable: r.unreadable }));
        this.hooks.changed();
        for (const w of waiters) w.ok();
      } catch (e) {
        this.gen++;
        for (const w of waiters) w.ko(e);
      }
    }
    this.pending = 0;
    this.done = 0;
    this.hooks.progress(0, 0);
    this.running = null;
  }

  // ---- what the core computes --------------------------------------------

  /** @param {string} [layout] */
  options(layout = this.layout) {
    /** @type {Record<string, string>} */
    const o = { layout: layout === 'flat' ? 'flat' : 'nested', mode: this.mode };
    if (this.baseDir.trim()) o['base-dir'] = this.baseDir.trim();
    return o;
  }

  /** The XML for the current state (`layout` defaults to the model's). @param {'nested' | 'flat'} [layout] */
  xml(layout) {
    if (!this.session) throw new Error('backing-chain-editor: the wasm module is not loaded yet (await element.ready)');
    return this.session.xml(this.goodDomain || null, this.options(layout)).xml;
  }

  /** Recompute forest, XML and its error from the core. */
  compute() {
    this.computeForest();
    this.computeXml();
  }

  /** Recompute the forest only (the element renders the tree from it before the XML is computed, in a later task, when there is no domain XML). */
  computeForest() {
    this.forest = this.s.forest();
    this.forestGen = this.gen;
    this.park();
  }

  /** Recompute the XML and its error from the core (after computeForest). */
  computeXml() {
    const session = this.s;
    /** @type {Output | null} */
    let out = null;
    /** @type {{ message: string, position: number | null } | null} */
    let xmlError = null;
    const text = this.domainText;
    if (text.trim()) {
      try {
        out = session.xml(text, this.options());
        this.goodDomain = text;
      } catch (e) {
        if (e instanceof CorePanic) throw e;
        const x = /** @type {any} */ (e);
        xmlError = typeof x?.position === 'number' ? { message: errorText(e, { reason: true }), position: x.position } : { message: errorText(e), position: null };
      }
    } else {
      this.goodDomain = '';
    }
    if (!out) {
      try {
        out = session.xml(this.goodDomain || null, this.options());
      } catch (e) {
        if (e instanceof CorePanic) throw e;
        out = { xml: '', diagnostics: [], disks: 0, paths: [], targets: [] };
        xmlError ??= { message: errorText(e), position: null };
      }
    }
    this.xmlError = xmlError;
    this.output = out;
  }

  /** Number of disks in the result. */
  diskCount() {
    return this.output?.disks ?? 0;
  }

  /**
   * The document edits apply to: the domain XML with the chains the images
   * give written in (nested), or the bare disks (wrapped in a domain when
   * there are several). `null` when there is no disk.
   */
  effectiveDoc() {
    const session = this.s;
    const out = session.xml(this.goodDomain || null, { ...this.options('nested'), mode: 'populate', wrap: true });
    return this.goodDomain || out.disks ? out.xml : null;
  }

  /**
   * Per disk of the document edits apply to (validate: of the domain XML):
   * the diff with the images, its description and seclabels (the core's).
   */
  chainView() {
    const doc = this.mode === 'validate' && this.goodDomain ? this.goodDomain : this.effectiveDoc();
    if (!doc) return null;
    return { doc, diff: this.s.diff(doc, this.options('nested')), desc: describeXml(doc), labels: seclabels(doc) };
  }

  /**
   * Which VM disk (target dev) each top image belongs to, when a domain XML
   * is given: image filename → target. A disk's source names its image as the
   * core matches them when it populates (same path, else the only image with
   * that basename).
   * @returns {Map<string, string>}
   */
  diskTargets() {
    /** @type {Map<string, string>} */
    const out = new Map();
    const f = this.forest;
    if (!f || !this.goodDomain) return out;
    // The core says which disk each image is the source of (its own rule).
    for (const t of this.output?.targets ?? []) {
      const name = f.images[t.image]?.filename;
      if (name !== undefined && !out.has(name)) out.set(name, t.disk);
    }
    return out;
  }

  /** Missing backing files (absolute paths) a host may add; when untrusted, never a flagged name. */
  missingBackings() {
    const f = this.forest;
    if (!f) return [];
    const bad = new Set(this.untrusted ? f.chains.flatMap((c) => c.diagnostics.filter((d) => d.code === 'untrusted-backing-name').map((d) => d.image)) : []);
    return [...new Set(f.links.filter((l, i) => l.kind === 'missing' && l.resolved?.startsWith('/') && !bad.has(i)).map((l) => /** @type {string} */ (l.resolved)))];
  }

  /**
   * The image-store audit of the images in the set: the element's domain XML
   * (when given, labelled `domain`) and `domains` (any number of VMs' XML).
   * It runs in the on-demand module, loaded first when it is not yet.
   * @param {Array<{ label: string, text: string }>} domains
   * @param {{ 'deep-chain'?: number }} [options]
   */
  async audit(domains, options = {}) {
    if (!metaLoaded()) await loadMeta();
    await settled();
    if (!this.session) throw new CorePanic(this.panicMessage ?? 'the core is not running');
    /** @type {Record<string, number>} */
    const sizes = {};
    for (const [name, m] of this.meta) if (m.size >= 0) sizes[name] = m.size;
    const all = this.goodDomain ? [{ label: 'domain', text: this.goodDomain }, ...domains] : [...domains];
    return this.mirror().audit(all, { ...options, sizes });
  }

  // ---- qcow2 data files ----------------------------------------------------

  /** A dropped data file leaves the session (no chain, no <disk>) while an image names it; it is probed again when none does. */
  park() {
    const f = this.f;
    const session = this.s;
    for (const n of this.parked.keys()) if (!this.meta.has(n)) this.parked.delete(n);
    const names = () => [...(this.f).images.map((o) => o.filename), ...this.parked.keys()];
    const used = new Set(session.dataFiles(names()).map((d) => d.file));
    const park = f.images.filter((im, j) => used.has(im.filename) && f.links[j].kind === 'none' && !f.overlays[j]?.length && this.meta.get(im.filename)?.job.reader);
    for (const im of park) {
      this.parked.set(im.filename, im.error ? 'unreadable' : /** @type {string} */ (im.format));
      session.remove(im.filename);
      this.gen++;
    }
    for (const n of this.parked.keys()) {
      if (used.has(n)) continue;
      this.parked.delete(n);
      this.probe([/** @type {Meta} */ (this.meta.get(n)).job], { record: false });
    }
    if (park.length) {
      this.forest = session.forest();
      this.forestGen = this.gen;
    }
    this.data = new Map(session.dataFiles(names()).map((d) => [d.image, [d.name, d.file ?? undefined]]));
  }

  /** The data file of image `idx`, in words (or undefined). @param {number} idx */
  dataText(idx) {
    const d = this.data.get(idx);
    return d && `${d[0]} (${d[1] === undefined ? 'not among the dropped files' : this.parked.get(d[1]) ?? 'also a layer'})`;
  }

  // ---- diagnostics ---------------------------------------------------------

  /** Written paths from relative image names: relative, or absolute by a guessed directory (the core says which). @returns {Diagnostic[]} */
  pathDiagnostics() {
    if (this.baseDir.trim()) return [];
    /** @type {Map<string, Set<string>>} origin → directories ('' = relative) */
    const per = new Map();
    for (const p of this.output?.paths ?? []) {
      if (p['base-dir'] !== null && !p.guessed) continue;
      const o = this.meta.get(p.image)?.job.from ?? 'the folder the files came from';
      if (!per.has(o)) per.set(o, new Set());
      per.get(o)?.add(p['base-dir'] ?? '');
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

  /** The layer a chain diagnostic is about (the core says: `image`). @param {Diagnostic} diag @param {number[]} layers */
  ownerOf(diag, layers) {
    const i = diag.image;
    return typeof i === 'number' && layers.includes(i) ? i : layers[0];
  }

  /** Every diagnostic once, errors first, each with the image it is about (a name, or null). */
  diagnostics() {
    const f = this.f;
    const seen = new Set();
    /** @type {Array<Diagnostic & { image: string | null }>} */
    const all = [];
    /** @param {Diagnostic} d @param {string | null} image */
    const push = (d, image) => {
      const k = `${d.code}\u0000${d.message}`;
      if (seen.has(k)) return;
      seen.add(k);
      all.push({ ...d, image });
    };
    f.images.forEach((img) => (img.diagnostics ?? []).forEach((d) => push(d, img.filename)));
    for (const ch of f.chains) {
      for (const d of ch.diagnostics) {
        // A copy of the image's own probe note was listed with the image.
        if (!d['from-probe']) push(d, f.images[this.ownerOf(d, ch.layers)].filename);
      }
    }
    for (const d of f.diagnostics) push(d, null);
    for (const d of this.output?.diagnostics ?? []) push(d, null);
    for (const d of this.pathDiagnostics()) push(d, null);
    /** @type {Record<string, number>} */
    const order = { error: 0, warning: 1, info: 2 };
    all.sort((a, b) => (order[a.severity] ?? 3) - (order[b.severity] ?? 3));
    return all;
  }
}

/**
 * Does a row of the diff say the XML and the images disagree (type, place,
 * format, or where the chain ends; a layer the XML leaves unstated does not)?
 * @param {{ differs: string[] }} r
 */
export const rowDiffers = (r) => r.differs.some((x) => x === 'type' || x === 'place' || x === 'format' || x === 'depth');

/** Why the core does not follow a backing choice for an image, by its link's kind. @type {Record<string, string>} */
const NO_CHOICE = { none: 'its header names no backing file (a base)', remote: 'its backing is a network source', unparsed: 'its backing name cannot be read', unprobed: 'it could not be read' };
