// @ts-check
// The "Chains in the XML" view: each disk's chain, one table row per layer
// (validate mode: next to what the images say, differences marked), with
// the buttons that edit it and the layer/seclabel form (editor-layer-form.js).
// Many disks are rendered in groups near the screen. `render(model)` redraws
// it; the open form and the last refusal are this view's own state.

import { h, onDemand } from './render.js';
import { CorePanic, WasmLoadError, errorText, isMetaPanic, prefetchMeta } from './editor-wasm.js';
import { menuButton } from './editor-menu.js';
import { rowDiffers } from './editor-model.js';

/** The layer form's module: imported when a form is first opened, or
 *  earlier when the user reaches for the table (`prefetch`): a page that
 *  only shows chains never loads it (issue 18: first paint). */
const form = onDemand(() => import('./editor-layer-form.js'));

/** Over twice this many disks, groups of this many are rendered near the screen. */
const DISK_GROUP = 20;

/**
 * @typedef {import('./editor-model.js').EditorModel} EditorModel
 * @typedef {import('./backing-chain-editor').EditOp} EditOp
 * @typedef {import('./backing-chain-wasm').DiskDiff} DiskDiff
 * @typedef {import('./backing-chain-wasm').DiskSummary} DiskSummary
 * @typedef {import('./backing-chain-wasm').Seclabel} Seclabel
 * @typedef {ReturnType<EditorModel['chainView']>} ChainView
 * @typedef {{ disk: number, depth: number, kind: 'edit' | 'insert' | 'seclabel' }} Editing
 * @typedef {{ edit(op: EditOp): void, replace(): void, readonly(): boolean, safely(fn: () => void): void }} ChainsActions
 */

export class ChainsView {
  /** @param {string} id @param {EditorModel} m @param {ChainsActions} actions */
  constructor(id, m, actions) {
    this.id = id;
    this.actions = actions;
    this.m = m;
    /** @type {Editing | null} the open form */
    this.editing = null;
    /** @type {{ disk?: string, depth?: string, act?: string, term?: number } | null} what opened the form (the focus returns there) */
    this.opener = null;
    /** @type {string | null} why the last edit was refused */
    this.editError = null;
    /** @type {string | null} why the edit form (editor-layer-form.js, imported when first opened) could not be loaded */
    this.formError = null;
    /** @type {ChainView | undefined} the model's chainView(), once per render (undefined: not yet asked) */
    this.view = undefined;
    /** @type {{ error: unknown, op: EditOp } | null} an edit that waits for the on-demand module, which could not be loaded (said, with a way to try the edit again) */
    this.loadError = null;
    /** @type {Set<number>} */
    this.groupsShown = new Set();
    /** @type {IntersectionObserver | null} */
    this.seen = null;
    this.body = h('div', { class: 'chains-body' });
    this.note = h('p', { class: 'hint meta' });
    this.replace = h('button', { type: 'button', class: 'primary edit-only', hidden: true, onclick: () => actions.replace() }, 'Replace with what the images say');
    this.error = h('p', { class: 'edit-error', role: 'alert', hidden: true });
    /** Undo / redo (the element puts them here: with the edits). */
    this.tools = h('div', { class: 'edit-tools edit-only', role: 'group', 'aria-label': 'Edit history' });
    this.el = h(
      'section',
      { class: 'chains', 'aria-labelledby': `${id}-ch` },
      h('div', { class: 'toolbar' }, h('h2', { id: `${id}-ch` }, 'Chains in the XML'), h('span', { class: 'spacer' }), this.replace, this.tools),
      this.note,
      this.error,
      this.body,
    );
    // Opening a row's menu or a form, or focusing a control: the on-demand
    // module (the edits) starts loading, so that the edit rarely waits.
    this.el.addEventListener('pointerdown', () => this.prefetch());
    this.el.addEventListener('focusin', () => this.prefetch());
  }

  /** Close the form and forget a refusal (an edit went through). */
  settle() {
    this.editing = null;
    this.editError = null;
    this.loadError = null;
  }

  /** The model's chain view, once per render; an error is shown, not thrown. */
  chainView() {
    if (this.view !== undefined) return this.view;
    this.view = null;
    try {
      this.view = this.m.chainView();
    } catch (e) {
      if (e instanceof CorePanic) throw e;
      this.error.hidden = false;
      this.error.textContent ||= errorText(e); // an edit's refusal first
    }
    return this.view;
  }

  /**
   * Where the keyboard focus is in the table, to put it back after a render.
   * @returns {{ disk?: string, depth?: string, act?: string, term?: number } | null}
   */
  focused() {
    const body = this.body;
    const active = /** @type {HTMLElement | null} */ ((/** @type {ShadowRoot | Document} */ (body.getRootNode())).activeElement);
    if (active && body.contains(active) && !active.closest('form')) {
      // An action run from a row's menu: the focus goes back to the menu button.
      return { disk: /** @type {HTMLElement | null} */ (active.closest('[data-disk]'))?.dataset.disk, depth: /** @type {HTMLElement | null} */ (active.closest('tr[data-depth]'))?.dataset.depth, act: active.closest('.menu-wrap') ? 'menu' : active.dataset.act, term: active.closest('.terminator') ? 1 : 0 };
    }
    if (active && body.contains(active)) return { disk: /** @type {HTMLElement | null} */ (active.closest('[data-disk]'))?.dataset.disk };
    return null;
  }

  /**
   * An edit starts: it may wait for the on-demand module, while the menu
   * it came from closes and the focus leaves it; the render after it puts
   * the focus back where it was now.
   */
  editStarts() {
    if (!this.editing) this.opener ??= this.focused();
  }

  /** Try again an edit that waited for the on-demand module, which could not be loaded. @param {EditOp} op */
  retry(op) {
    this.loadError = null;
    this.actions.edit(op);
  }

  /** The user is about to edit (a menu, a form, an editing control): start fetching the on-demand module. */
  prefetch() {
    if (this.actions.readonly()) return;
    prefetchMeta();
    form.load().catch(() => {}); // said when a form is opened
  }

  /** @param {EditorModel} [m] */
  render(m = this.m) {
    this.m = m;
    const { body, note, replace, error } = this;
    const validate = m.mode === 'validate';
    this.seen?.disconnect();
    // Many disks: a group is rendered near the screen, or at once if it was
    // on screen or has the focus or the edit form.
    const disks = m.diskCount();
    const lazy = disks > 2 * DISK_GROUP;
    error.hidden = !this.editError && !this.formError;
    error.textContent = this.editError ? `The edit was refused: ${this.editError}` : (this.formError ?? '');
    this.view = undefined;
    const view = lazy ? null : this.chainView();
    replace.hidden = !(validate && m.output?.mismatch);
    if (this.loadError) {
      const { error: e, op } = this.loadError;
      const detail = /** @type {any} */ (e)?.detail;
      error.hidden = false;
      error.replaceChildren(
        `The edit was not applied: the chain editor could not be loaded: ${errorText(e)}${detail ? ` ${detail}` : ''} `,
        h('button', { type: 'button', onclick: () => this.retry(op) }, 'Try again'),
      );
    }
    note.textContent = !view && !lazy
      ? 'No disk yet: drop images or give a domain XML.'
      : validate
        ? 'Validate: each chain as the XML states it, next to what the image headers say; differences are marked.'
        : 'Each disk’s chain as the result states it. Edit a layer, insert or remove one, end the chain, set its seclabel: the domain XML keeps your chain from then on (it is trusted, not repopulated).';
    // Keep the keyboard focus across the re-render (the same control, else its disk),
    // so that Ctrl+Z right after an edit still reaches the element.
    let keep = this.focused();
    // A form closed (cancelled or applied): the focus goes back to what opened it.
    if (!this.editing && this.opener) {
      keep = this.opener;
      this.opener = null;
    }
    if (lazy) {
      const now = new Set(this.groupsShown);
      for (const d of [keep?.disk, this.editing?.disk]) if (d != null) now.add(Math.floor(Number(d) / DISK_GROUP));
      const shown = (this.groupsShown = new Set());
      const seen = (this.seen = new IntersectionObserver(
        (entries) =>
          this.actions.safely(() => {
            for (const { target, isIntersecting } of entries) {
              const g = Number(/** @type {HTMLElement} */ (target).dataset.group);
              if (!isIntersecting) shown.delete(g);
              else {
                shown.add(g);
                if (!(/** @type {HTMLElement} */ (target).dataset.filled)) this.fillGroup(/** @type {HTMLElement} */ (target), g);
              }
            }
          }),
        { rootMargin: '100% 0px' },
      ));
      body.replaceChildren(
        ...Array.from({ length: Math.ceil(disks / DISK_GROUP) }, (_, g) => {
          const box = h('div', { class: 'disk-group', 'data-group': g });
          if (now.has(g)) this.fillGroup(box, g);
          seen.observe(box);
          return box;
        }),
      );
    } else if (!view) {
      body.replaceChildren();
      return;
    } else body.replaceChildren(...view.diff.map((d) => this.diskView(d, view.desc[d.disk], validate)));
    if (keep && !this.editing) {
      const disk = body.querySelector(`[data-disk="${Number(keep.disk) || 0}"]`) ?? body.querySelector('[data-disk]');
      /** @type {HTMLElement | null | undefined} */
      let target = null;
      if (disk && keep.term) target = disk.querySelector('.terminator input');
      else if (disk && keep.act === 'append') target = disk.querySelector('button[data-act=append]');
      else if (disk && keep.act && keep.depth) target = disk.querySelector(`tr[data-depth="${Number(keep.depth)}"] button[data-act="${keep.act.replace(/[^a-z-]/g, '')}"]`);
      target ??= disk?.querySelector('h3');
      target?.focus();
    }
  }

  /** Renders group `g` of the disks (counted with any `<disk` in comments: never fewer). @param {HTMLElement} box @param {number} g */
  fillGroup(box, g) {
    const view = this.chainView();
    box.dataset.filled = '1';
    if (view) box.replaceChildren(...view.diff.slice(g * DISK_GROUP, (g + 1) * DISK_GROUP).map((d) => this.diskView(d, view.desc[d.disk], this.m.mode === 'validate')));
  }

  /** @param {DiskDiff} d @param {DiskSummary | undefined} desc @param {boolean} validate */
  diskView(d, desc, validate) {
    const layers = desc ? desc.main.map((i) => desc.layers[i]) : [];
    const labels = this.view?.labels?.[d.disk] ?? [];
    /** @param {Seclabel} l */
    const labelText = (l) => `seclabel ${l.model ?? '?'}${l.relabel ? ` relabel=${l.relabel}` : ''}${l.label != null ? ` label=${l.label}` : ''}${l.others ? ` (+${l.others} more)` : ''}`;
    const rowsIn = d.rows;
    const bad = rowsIn.some(rowDiffers);
    // The images' column: always in validate mode; in populate mode as soon as
    // an edit makes the XML's chain disagree with the images (marked at once).
    const cols = validate || bad;
    let status = '';
    if (validate) {
      if (!d['has-chain']) status = 'not given: no <backingStore> in the XML, libvirt probes the images';
      else if (!d.matched) status = 'no image matches the disk source: not validated';
      else status = bad ? 'differs from the images' : 'matches the images';
    } else if (bad) status = 'the XML differs from the images (kept as written)';
    const ed = this.editing?.disk === d.disk ? this.editing : null;
    const head = h('tr', null, h('th', { scope: 'col' }, 'Depth'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Source'), h('th', { scope: 'col' }, 'Format'), cols ? h('th', { scope: 'col' }, 'The images say') : null, h('th', { scope: 'col', class: 'edit-only' }, 'Edit'));
    const rows = [];
    for (const r of rowsIn) {
      const x = r.xml;
      const m = r.images;
      // What differs (a layer the XML does not give is "not given", not a difference).
      const differs = r.differs.filter((x) => x !== 'unstated');
      const diff = new Set(cols ? differs : []);
      /** @param {string} field @param {string | null | undefined} text @param {string} label */
      const cell = (field, text, label) => h('td', { class: diff.has(field) ? 'differs' : null, 'data-field': field, 'data-label': label }, text ?? '—');
      const imgText = m ? `${r.differs.includes('unstated') ? 'not given in the XML; the images: ' : ''}${m.type ?? ''} ${m.place}${m.format ? ` (${m.format})` : ''}` : diff.has('depth') ? 'no such layer: the chain ends above' : diff.has('unverified') ? 'not followed that far' : '—';
      const actions = x
        ? h(
            'td',
            { class: 'edit-only actions' },
            menuButton(`Actions for layer ${r.depth} of ${d.name}`, [
              { act: 'edit', text: 'Edit…', run: () => this.open(d.disk, r.depth, 'edit') },
              { act: 'insert', text: 'Insert a layer above…', run: () => this.open(d.disk, r.depth, 'insert') },
              { act: 'seclabel', text: 'Seclabel…', run: () => this.open(d.disk, r.depth, 'seclabel') },
              { act: 'remove', text: 'Remove', run: () => this.actions.edit({ op: 'remove-layer', disk: d.disk, depth: r.depth }) },
            ], { 'data-act': 'menu' }),
          )
        : h('td', { class: 'edit-only' });
      rows.push(
        h(
          'tr',
          { 'data-depth': String(r.depth), class: diff.size ? 'row-differs' : null },
          h('td', { class: 'depth', 'data-label': 'Layer' }, String(r.depth)),
          cell('type', x?.type, 'Type'),
          h(
            'td',
            { class: diff.has('place') ? 'differs' : null, 'data-field': 'place', 'data-label': 'Source' },
            x?.place ?? '—',
            ...(labels[r.depth] ?? []).map((l) => h('div', { class: 'seclabel meta' }, labelText(l))),
          ),
          cell('format', x?.format, 'Format'),
          cols ? h('td', { class: diff.size ? 'differs images' : 'images', 'data-differs': differs.join(' '), 'data-label': 'The images say' }, imgText) : null,
          actions,
        ),
      );
      // The form once: under its layer (a row of the XML), or at the end (below).
      if (ed && x && ed.depth === r.depth) rows.push(h('tr', { class: 'form-row' }, h('td', { colspan: cols ? '6' : '5' }, this.form(d, ed, layers[r.depth - 1], labels[r.depth] ?? []))));
    }
    const n = rowsIn.filter((r) => r.xml).length;
    const term = h('input', {
      type: 'checkbox',
      checked: d['xml-terminated'],
      disabled: this.actions.readonly(),
      onchange: (/** @type {Event} */ ev) => this.actions.edit({ op: 'set-terminator', disk: d.disk, on: /** @type {HTMLInputElement} */ (ev.target).checked }),
    });
    const termDiff = cols && d.matched && d['has-chain'] && d['xml-terminated'] !== d['images-terminated'];
    const foot = h(
      'div',
      { class: 'chain-foot' },
      h('label', { class: termDiff ? 'differs terminator' : 'terminator' }, term, n ? ` End of chain after layer ${n}` : ' No backing image: end of chain at the disk', h('span', { class: 'meta' }, ' (an empty <backingStore/>: libvirt looks no further)'), cols && d.matched ? ` — the images: ${d['images-terminated'] ? 'it ends' : 'not known to end'}` : ''),
      h('button', { type: 'button', class: 'edit-only', 'data-act': 'append', onclick: () => this.open(d.disk, n + 1, 'insert') }, 'Add a layer at the end'),
    );
    const tail = ed && ed.depth === n + 1 ? this.form(d, ed, null) : null;
    // What the last edit of this chain did in the tree (a reparent), or why not.
    const fw = this.followed(d.disk);
    const follow = fw && h('div', { class: 'follow meta' }, fw.done.length ? h('p', { class: 'follow-done' }, `Also in the tree: ${fw.done.join('; ')}.`) : null, fw.notes.length ? h('p', { class: 'follow-not' }, `Not in the tree: ${fw.notes.join('; ')}.`) : null);
    return h(
      'div',
      { class: `disk${bad ? ' bad' : ''}`, 'data-disk': String(d.disk), 'data-name': d.name },
      h('h3', { tabindex: '-1' }, d.name, status ? h('span', { class: `badge ${bad ? 'error' : ''}` }, status) : null),
      follow,
      h('div', { class: 'table-wrap' }, h('table', { class: 'chain' }, h('thead', null, head), h('tbody', null, rows))),
      foot,
      tail,
    );
  }

  /**
   * What the last chain edit did in the tree, when it was made to disk
   * `disk` of the domain XML shown now (after an undo it is not).
   * @param {number} disk
   */
  followed(disk) {
    const fw = this.m.followed;
    return fw && fw.disk === disk && fw.domain === this.m.domainText ? fw : null;
  }

  /**
   * Disks whose chain in the XML disagrees with the images (the last render;
   * none while many disks are rendered lazily): target → what differs, in words.
   * @returns {Map<string, string>}
   */
  differences() {
    /** @type {Map<string, string>} */
    const out = new Map();
    for (const d of this.view?.diff ?? []) {
      const rows = d.rows.filter(rowDiffers);
      if (!rows.length) continue;
      const why = this.followed(d.disk)?.notes ?? [];
      out.set(d.name, rows.map((r) => `layer ${r.depth}: the XML ${r.xml ? `says ${r.xml.place}${r.xml.format ? ` (${r.xml.format})` : ''}` : 'ends above'}, the images ${r.images ? `say ${r.images.place}${r.images.format ? ` (${r.images.format})` : ''}` : 'end above'}`).join('; ') + (why.length ? `; not a reparent: ${why.join('; ')}` : ''));
    }
    return out;
  }

  /** @param {number} disk @param {number} depth @param {Editing['kind']} kind */
  open(disk, depth, kind) {
    this.formError = null;
    if (!form.module) {
      form.load().then(
        () => this.actions.safely(() => this.open(disk, depth, kind)),
        (e) => this.actions.safely(() => {
          this.formError = `The edit form could not be loaded (${errorText(e)}); open it again to retry.`;
          this.render();
        }),
      );
      return;
    }
    // Where the focus goes back when the form closes: the row's menu, or "Add a layer at the end".
    const append = kind === 'insert' && !this.body.querySelector(`[data-disk="${disk}"] tr[data-depth="${depth}"]`);
    this.opener = { disk: String(disk), depth: String(depth), act: append ? 'append' : 'menu', term: 0 };
    this.editing = { disk, depth, kind };
    this.editError = null;
    this.loadError = null;
    this.prefetch();
    this.render();
    /** @type {HTMLElement | null} */ (this.body.querySelector('form.edit input, form.edit select'))?.focus();
  }

  close() {
    this.editing = null;
    this.render();
  }

  /**
   * An edit was refused, or could not be applied: say why. `op` (the edit):
   * when the on-demand module could not be loaded, a button tries it again.
   * @param {unknown} e @param {EditOp} [op]
   */
  refused(e, op) {
    if (e instanceof CorePanic && !isMetaPanic(e)) return; // reported, and the core restarts
    if (e instanceof WasmLoadError && op) {
      this.editError = null;
      this.loadError = { error: e, op };
    } else {
      this.loadError = null;
      // A panic of the on-demand module: the next edit gets a fresh instance of it.
      this.editError = isMetaPanic(e) ? `the chain editor stopped with an internal error (${errorText(e)}); it is started again at the next edit.` : errorText(e, { reason: true });
    }
    this.render();
  }

  /** @param {DiskDiff} d @param {Editing} ed @param {import('./backing-chain-wasm').XmlLayer | null | undefined} layer @param {Seclabel[]} [labels] */
  form(d, ed, layer, labels = []) {
    if (!form.module) return h('p', { class: 'hint' }, 'Loading the form…');
    return form.module.layerForm({ id: `${this.id}-f`, disk: d.disk, name: d.name, depth: ed.depth, kind: ed.kind, layer, labels }, { edit: (op) => this.actions.edit(op), refused: (e) => this.refused(e), cancel: () => this.close() });
  }
}
