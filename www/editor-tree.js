// @ts-check
// The "Backing chains" view: the tree of chains (top → base, an ARIA tree
// with roving tabindex), each layer's diagnostics, and the selected image's
// details. `render(model)` redraws it; selection, collapsed and opened
// shared bases are this view's own state.

import { h, humanSize, copyText, bytesReadText, SEVERITY_ICON, onDemand } from './render.js';
import { FilterBar, match, words } from './editor-filter.js';
import { adviceFor } from './editor-fixes.js';


/** The selected image's details (editor-details.js and its combobox):
 *  imported when an image is first selected, not at first paint (issue 18). */
const detailsView = onDemand(() => import('./editor-details.js'));

/**
 * @typedef {import('./editor-model.js').EditorModel} EditorModel
 * @typedef {import('./backing-chain-editor').Diagnostic} Diagnostic
 * @typedef {import('./backing-chain-editor').Chain} Chain
 * @typedef {{ idx: number, depth: number, key: string, at?: string, last: boolean }} Plan an item of a chain: a layer, or (`at`) the line to a shared base shown under that top
 * @typedef {{ remove(name: string): void, setBacking(image: string, backing: string | null): void, alloc?(name: string): HTMLElement, prefetch?(): void }} TreeActions
 */

/** From this many chains on, the chains start collapsed (Expand all opens them). */
const COLLAPSE_OVER = 40;
/** Items built in the render's own task (more than a screenful), then per later task. */
const FIRST_ITEMS = 150;
const CHUNK = 400;
/** @type {Record<string, number>} */
const SEV_ORDER = { error: 0, warning: 1, info: 2 };

export class TreeView {
  /** @param {string} id prefix of element ids @param {EditorModel} m @param {TreeActions} actions */
  constructor(id, m, actions) {
    this.id = id;
    this.actions = actions;
    this.m = m;
    /** @type {string | null} image filename */
    this.selected = null;
    /** @type {Map<string, boolean>} keys of items opened or closed by the user (else: the default) */
    this.toggled = new Map();
    /** @type {boolean | null} open by default (null: by the number of chains) */
    this.defaultOpen = null;
    /** @type {boolean | null} the chains a filter shows: open unless collapsed */
    this.filterOpen = null;
    /** @type {Set<string>} shared bases whose overlays are listed */
    this.openShared = new Set();
    this.query = '';
    /** Chains with an error (the last render). */
    this.errorChains = 0;
    /** @type {Map<string, string>} top image filename → its disk's target (from the domain XML) */
    this.disks = new Map();
    /** @type {Map<string, string>} disk target → how its chain in the XML differs from the images */
    this.differs = new Map();
    /** Renders so far (a later task of an older render stops). */
    this.gen = 0;
    /** @type {(() => void) | null} adds the chains not in the tree yet */
    this.rest = null;
    /** @type {Map<HTMLElement, { rest: Plan[], chain: Chain, perLayer: Map<number, Diagnostic[]>, open: boolean }>} a closed item → the items under it, built when it first opens */
    this.pending = new Map();
    /** @type {Map<number, HTMLElement>} image → the closed item it waits under */
    this.owners = new Map();
    this.filter = new FilterBar(id, {
      changed: (q) => {
        this.query = q;
        this.filterOpen = null;
        this.renderTree();
      },
      expandAll: (open) => {
        if (words(this.query).length) this.filterOpen = open;
        else this.defaultOpen = open;
        this.toggled.clear();
        this.renderTree();
      },
    });
    this.tree = h('ul', { role: 'tree', 'aria-label': 'Backing chains, top to base', id: `${id}-tree` });
    this.tree.addEventListener('keydown', (ev) => this.key(ev));
    this.empty = h('p', { class: 'empty' }, 'No images yet. Drop qcow2 (or other) disk images — top, middle and base layers — or a whole folder, and their chains appear here, top first.');
    this.none = h('p', { class: 'empty', hidden: true }, 'No chain matches the filter.');
    this.details = h('div', { class: 'details', 'aria-live': 'polite' });
    this.el = h('section', { class: 'forest', 'aria-labelledby': `${id}-fh` }, h('h2', { id: `${id}-fh` }, 'Backing chains'), this.filter.el, this.empty, this.none, this.tree, this.details);
  }

  get forest() {
    return this.m.f;
  }

  /** Forget the selection and opened items (the images were cleared). */
  reset() {
    this.selected = null;
    this.toggled.clear();
    this.defaultOpen = null;
  }

  /** Filter the tree (the summary's links, a script). @param {string} q */
  setFilter(q) {
    this.query = q;
    this.filterOpen = null;
    this.filter.set(q);
    this.renderTree();
  }

  /** @param {EditorModel} m */
  render(m) {
    this.m = m;
    this.renderTree();
    this.renderDetails();
  }

  renderDetails() {
    const { m, details, selected } = this;
    if (selected === null || !m.f.images.some((im) => im.filename === selected)) {
      details.removeAttribute('aria-busy');
      details.replaceChildren(m.f.images.length ? h('p', { class: 'meta' }, 'Select an image (click, or arrow keys and Enter) to see its details.') : '');
      return;
    }
    if (detailsView.module) {
      detailsView.module.renderDetails(details, m, selected, { id: this.id, select: (i) => this.select(i), ...this.actions });
      return;
    }
    details.setAttribute('aria-busy', 'true');
    detailsView.load().then(
      () => {
        details.removeAttribute('aria-busy');
        if (this.selected === selected) this.renderDetails();
      },
      (e) => {
        details.removeAttribute('aria-busy');
        if (this.selected === selected) details.replaceChildren(h('p', { class: 'diag error', role: 'alert' }, `The details of ${selected} could not be loaded (${String(e?.message ?? e)}); select it again to retry.`));
      },
    );
  }

  /** Per chain: its diagnostics by layer, severities, and the facts the filter matches on. */
  chainFacts() {
    const f = this.forest;
    return f.chains.map((chain) => {
      /** @type {Map<number, Diagnostic[]>} */
      const perLayer = new Map();
      for (const d of chain.diagnostics) {
        const o = this.m.ownerOf(d, chain.layers);
        // The chain repeats an image's own probe notes ('name': …): shown once, with the image.
        if (d['from-probe']) continue;
        if (!perLayer.has(o)) perLayer.set(o, []);
        perLayer.get(o)?.push(d);
      }
      const severities = new Set();
      for (const ds of perLayer.values()) for (const d of ds) severities.add(d.severity);
      for (const i of chain.layers) for (const d of f.images[i].diagnostics ?? []) severities.add(d.severity);
      const disk = this.disks.get(f.images[chain.top]?.filename);
      /** @type {import('./editor-filter.js').ChainFacts} */
      const facts = {
        names: chain.layers.map((i) => f.images[i].filename),
        formats: chain.layers.map((i) => f.images[i].format ?? 'unreadable'),
        disks: disk ? [disk.toLowerCase()] : [],
        status: chain.status,
        end: chain.end,
        severities,
        shared: chain.layers.some((i) => (f.overlays[i]?.length ?? 0) > 1),
      };
      return { chain, perLayer, facts, error: severities.has('error') || (chain.status !== 'ok' && chain.status !== 'remote' && chain.status !== 'untrusted') };
    });
  }

  renderTree() {
    const f = this.forest;
    const tree = this.tree;
    const root = /** @type {ShadowRoot | Document} */ (tree.getRootNode());
    const focusedKey = /** @type {HTMLElement | null} */ (root.activeElement)?.dataset?.key;
    tree.replaceChildren();
    this.pending = new Map();
    this.owners = new Map();
    this.gen++; // an older render's later tasks stop
    this.rest = null;
    this.empty.hidden = f.images.length > 0;
    tree.hidden = f.images.length === 0;
    this.filter.el.hidden = f.images.length === 0;
    this.none.hidden = true;
    if (!f.images.length) return;
    if (!f.images.some((im) => im.filename === this.selected)) this.selected = null;
    const all = this.chainFacts();
    // Chains with errors first; otherwise in the order given (a stable sort).
    const order = all.map((_, i) => i).sort((a, b) => Number(all[b].error) - Number(all[a].error) || a - b);
    const ws = words(this.query);
    const shown = ws.length ? order.filter((i) => match(ws, all[i].facts)) : order;
    this.filter.counted(shown.length, all.length, ws.length > 0);
    this.errorChains = all.filter((c) => c.error).length;
    this.none.hidden = shown.length > 0;
    const open = ws.length ? (this.filterOpen ?? true) : (this.defaultOpen ?? all.length <= COLLAPSE_OVER);
    /** @type {Map<number, string>} image → the top of the chain it is shown in */
    const placed = new Map();
    // The first screenful (and more) at once; the rest of the chains in
    // later tasks of CHUNK items each, so that no task builds thousands of
    // items; finish() adds them at once where all are needed (keys, select).
    const gen = ++this.gen;
    /** @type {HTMLElement | null} the item with tabindex 0 */
    let target = null;
    let at = 0;
    /** @param {number} budget items to add (whole chains) */
    const some = (budget) => {
      if (gen !== this.gen) return;
      const frag = document.createDocumentFragment();
      /** @type {HTMLElement[]} */
      const items = [];
      while (at < shown.length && items.length < budget) this.chainItems(all[shown[at++]], placed, open, items);
      for (const i of items) frag.append(i);
      tree.append(frag);
      // Roving tabindex: the focused, else the selected, else the first item.
      const visible = items.filter((i) => !i.hidden);
      const want = visible.find((i) => i.dataset.key === focusedKey) ?? (target ? null : (visible.find((i) => i.getAttribute('aria-selected') === 'true') ?? visible[0]));
      for (const i of items) i.tabIndex = -1;
      if (want) {
        if (target) target.tabIndex = -1;
        target = want;
        target.tabIndex = 0;
        if (focusedKey && want.dataset.key === focusedKey) want.focus();
      }
      if (at >= shown.length) this.rest = null;
    };
    this.rest = () => some(Infinity);
    some(FIRST_ITEMS);
    const step = () => {
      if (gen !== this.gen || at >= shown.length) return;
      some(CHUNK);
      setTimeout(step, 0);
    };
    setTimeout(step, 0);
  }

  /** Every chain in the tree now (not in later tasks). */
  finish() {
    this.rest?.();
  }

  /**
   * The items of one chain (a flat list: aria-level says the depth) into `items`.
   * @param {{ chain: Chain, perLayer: Map<number, Diagnostic[]> }} c
   * @param {Map<number, string>} placed image → the top of the chain it is shown in
   * @param {boolean} open @param {HTMLElement[]} items
   */
  chainItems({ chain, perLayer }, placed, open, items) {
    const f = this.forest;
    const topName = f.images[chain.top].filename;
    // A flat list of items (aria-level says the depth): an item's text is
    // its own (its name comes from its content), not its descendants'.
    // Where a shared base was shown already: a line that leads to it. The
    // plan is made for the whole chain (the shared bases' places), the items
    // only down to the first closed one: what is under it is built when it
    // first opens (`materialize`), so a collapsed tree of thousands of
    // chains builds one item per chain.
    /** @type {Plan[]} */
    const plan = [];
    for (let depth = 0; depth < chain.layers.length; depth++) {
      const idx = chain.layers[depth];
      const key = `${topName}\u0000${depth}`;
      const at = placed.get(idx);
      if (at !== undefined) {
        plan.push({ idx, depth, key, at, last: true });
        break;
      }
      placed.set(idx, topName);
      plan.push({ idx, depth, key, last: depth === chain.layers.length - 1 });
    }
    let n = 0;
    for (; n < plan.length; n++) {
      const item = this.planItem(plan[n], chain, perLayer, open);
      items.push(item);
      if (item.getAttribute('aria-expanded') === 'false' && n + 1 < plan.length) {
        const rest = plan.slice(n + 1);
        this.pending.set(item, { rest, chain, perLayer, open });
        for (const r of rest) if (r.at === undefined) this.owners.set(r.idx, item);
        break;
      }
    }
  }

  /**
   * One planned item: a layer, or the line to a shared base shown elsewhere.
   * @param {Plan} p @param {Chain} chain @param {Map<number, Diagnostic[]>} perLayer @param {boolean} open
   */
  planItem(p, chain, perLayer, open) {
    if (p.at !== undefined) return this.refItem(p.idx, p.depth + 1, p.key, p.at);
    const item = this.item(p.idx, p.depth + 1, p.key, perLayer.get(p.idx) ?? [], chain, p.depth, p.last);
    if (!p.last) setOpen(item, this.toggled.get(p.key) ?? open);
    return item;
  }

  /**
   * Build the items under `li` that were left for its first opening (they
   * come hidden, as under a closed item; `toggle` shows them).
   * @param {HTMLElement} li
   */
  materialize(li) {
    const p = this.pending.get(li);
    if (!p) return;
    this.pending.delete(li);
    /** @type {HTMLElement[]} */
    const items = p.rest.map((r) => this.planItem(r, p.chain, p.perLayer, p.open));
    for (const i of items) {
      i.hidden = true;
      i.tabIndex = -1;
      const idx = i.dataset.image;
      if (idx !== undefined && this.owners.get(Number(idx)) === li) this.owners.delete(Number(idx));
    }
    li.after(...items);
  }

  /** The tree item of image `idx` (built if it waits under a closed item), or null. @param {number} idx @returns {HTMLElement | null} */
  itemOf(idx) {
    this.finish();
    const owner = this.owners.get(idx);
    if (owner) this.materialize(owner);
    return this.tree.querySelector(`li[data-image="${idx}"]`);
  }

  /**
   * @param {number} idx @param {number} level @param {string} key
   * @param {Diagnostic[]} diags @param {Chain} chain @param {number} depth @param {boolean} last the chain ends here
   */
  item(idx, level, key, diags, chain, depth, last) {
    const m = this.m;
    const f = this.forest;
    const img = f.images[idx];
    const selected = img.filename === this.selected;
    const sizeText = img['virtual-size'] !== undefined ? humanSize(img['virtual-size']) : null;
    const own = [...(img.diagnostics ?? []), ...diags].sort((a, b) => (SEV_ORDER[a.severity] ?? 3) - (SEV_ORDER[b.severity] ?? 3));
    /** @type {Record<string, number>} */
    const counts = { error: 0, warning: 0, info: 0 };
    for (const d of own) counts[d.severity] = (counts[d.severity] ?? 0) + 1;
    const users = f.overlays[idx] ?? [];
    const top = depth === 0;
    const disk = top ? this.disks.get(img.filename) : undefined;
    const fmt = img.error ? 'unreadable' : img.format;
    const status = top && chain.status !== 'ok' ? chain.status : null;
    const xmlDiff = disk ? this.differs.get(disk) : undefined;
    const row = h(
      'div',
      { class: 'row' },
      h('span', { class: 'twisty', 'aria-hidden': 'true' }),
      disk ? h('span', { class: 'sr-only' }, 'disk ') : null,
      disk ? h('span', { class: 'badge disk', title: 'the VM disk (target dev) this chain belongs to' }, disk) : null,
      h('span', { class: 'name' }, img.filename),
      h('span', { class: `badge ${img.error ? 'error' : 'fmt'}` }, fmt),
      h('span', { class: 'meta size', title: `${sizeText ? `virtual size ${sizeText}; ` : ''}${bytesReadText(img['bytes-read'], m.meta.get(img.filename))}` }, sizeText ?? 'size unknown'),
      users.length > 1
        ? h(
            'button',
            {
              type: 'button',
              class: 'badge info shared',
              title: 'a shared base: show or hide all its overlays',
              'aria-expanded': String(this.openShared.has(img.filename)),
              onclick: (/** @type {Event} */ ev) => {
                ev.stopPropagation();
                if (this.openShared.has(img.filename)) this.openShared.delete(img.filename);
                else this.openShared.add(img.filename);
                this.renderTree();
              },
            },
            `shared by ${users.length} overlays`,
          )
        : null,
      img.identity ? h('span', { class: 'meta identity' }, Object.entries(img.identity).map(([k, v]) => `${k} ${v}`).join(', ')) : null,
      top ? h('span', { class: `badge ${status ? 'error' : ''}` }, status ? h('span', { class: 'sr-only' }, 'chain ') : null, status ?? `${chain.layers.length} layer${chain.layers.length > 1 ? 's' : ''}`) : null,
      ...['error', 'warning'].filter((s) => counts[s]).map((s) => h('span', { class: `badge ${s}` }, `${counts[s]} ${s}${counts[s] > 1 ? 's' : ''}`)),
      xmlDiff ? h('span', { class: 'badge error xml-differs' }, 'XML differs') : null,
    );
    spaced(row);
    const end = last ? this.endText(chain) : null;
    // Its accessible name comes from its content (the row, its messages, how
    // the chain ends): a few words only screen readers get fill the gaps.
    const item = h('li', { role: 'treeitem', 'aria-level': String(level), 'aria-selected': String(selected), 'data-key': key, 'data-image': String(idx), class: counts.error || status ? 'has-error' : null }, row);
    item.style.setProperty('--level', String(level));
    row.addEventListener('click', (ev) => {
      ev.stopPropagation();
      if (/** @type {Element} */ (ev.target).classList.contains('twisty')) this.toggle(item);
      this.select(idx, item);
    });
    if (xmlDiff) item.append(h('div', { class: 'diag warning xml-diff' }, h('span', { class: 'sev' }, `${SEVERITY_ICON.warning} XML`), h('span', { class: 'msg' }, `The chain in the domain XML differs from the images — ${xmlDiff}.`)));
    const data = m.dataText(idx);
    if (data) item.append(h('div', { class: 'meta datafile' }, `data file: ${data}`));
    for (const d of own) item.append(diagView(d, adviceFor(d, idx, f, chain.layers)));
    if (users.length > 1 && this.openShared.has(img.filename)) {
      item.append(
        h(
          'div',
          { class: 'overlays', 'aria-label': `Overlays of ${img.filename}` },
          h('span', { class: 'meta' }, 'Overlays: '),
          ...users.flatMap((u, n) => [n ? ', ' : '', h('button', { type: 'button', class: 'linkish', onclick: (/** @type {Event} */ ev) => { ev.stopPropagation(); this.select(u); } }, f.images[u].filename)]),
        ),
      );
    }
    // How the chain ends: part of its last layer, not an item of its own.
    if (end) item.append(h('div', { class: `end${end.bad ? ' bad' : ''}` }, end.text, end.hint ? h('span', { class: 'meta' }, ` ${end.hint}`) : null));
    return spaced(item);
  }

  /** A layer already shown under another chain (a shared base): a line that leads there. @param {number} idx @param {number} level @param {string} key @param {string} at */
  refItem(idx, level, key, at) {
    const f = this.forest;
    const img = f.images[idx];
    const users = f.overlays[idx]?.length ?? 0;
    const text = `shared base, shown once, under ${at}`;
    const li = h(
      'li',
      { role: 'treeitem', class: 'ref', 'aria-level': String(level), 'aria-selected': 'false', 'data-key': key, 'data-ref': String(idx) },
      spaced(h('div', { class: 'row' }, h('span', { class: 'twisty', 'aria-hidden': 'true' }, '↪'), h('span', { class: 'name' }, img.filename), h('span', { class: 'meta' }, `${text}${users > 1 ? `, shared by ${users} overlays` : ''}`))),
    );
    li.style.setProperty('--level', String(level));
    li.addEventListener('click', (ev) => {
      ev.stopPropagation();
      this.select(idx);
    });
    return li;
  }

  /** How a chain ends, in words. @param {Chain} chain @returns {{ text: string, bad: boolean, hint?: string }} */
  endText(chain) {
    const f = this.forest;
    const last = chain.layers[chain.layers.length - 1];
    const link = f.links[last];
    // How the walk ended (the status is the first problem, maybe higher up).
    switch (chain.end) {
      case 'ok':
        return { text: 'end of chain', bad: false, hint: '(no backing file; the XML closes it with an empty <backingStore/>)' };
      case 'missing':
        return { text: `missing: ${link?.resolved ?? '?'} (not among the dropped files)`, bad: true };
      case 'loop':
        return { text: `loop: back to ${f.images[/** @type {number} */ (link?.index)]?.filename ?? '?'}`, bad: true };
      case 'remote':
        return { text: `remote source, not opened: ${link?.source?.protocol ?? link?.source?.type ?? ''} ${link?.source?.name ?? link?.source?.path ?? ''}`, bad: false };
      default:
        return { text: `chain stops here: ${chain.end}`, bad: true };
    }
  }

  /** @returns {HTMLElement[]} */
  visibleItems() {
    this.finish();
    return /** @type {HTMLElement[]} */ ([...this.tree.querySelectorAll('li[role=treeitem]:not([hidden])')]);
  }

  /** The item above `li` in its chain (the tree is a flat list with levels). @param {Element} li */
  parentOf(li) {
    const level = Number(li.getAttribute('aria-level'));
    for (let p = li.previousElementSibling; p; p = p.previousElementSibling) {
      if (Number(p.getAttribute('aria-level')) < level) return /** @type {HTMLElement} */ (p);
    }
    return null;
  }

  /** @param {HTMLElement | null | undefined} li */
  focusItem(li) {
    if (!li) return;
    for (const i of this.tree.querySelectorAll('li[role=treeitem]')) /** @type {HTMLElement} */ (i).tabIndex = -1;
    li.tabIndex = 0;
    li.focus();
  }

  /** @param {HTMLElement} li @param {boolean} [open] */
  toggle(li, open) {
    if (!li.hasAttribute('aria-expanded')) return;
    const now = li.getAttribute('aria-expanded') === 'true';
    const next = open ?? !now;
    if (next) this.materialize(li);
    setOpen(li, next);
    this.toggled.set(String(li.dataset.key), next);
    // The items below it in its chain show or hide.
    const level = Number(li.getAttribute('aria-level'));
    let hide = !next;
    for (let n = /** @type {HTMLElement | null} */ (li.nextElementSibling); n && Number(n.getAttribute('aria-level')) > level; n = /** @type {HTMLElement | null} */ (n.nextElementSibling)) {
      n.hidden = hide;
      if (n.getAttribute('aria-expanded') === 'false') hide = true;
    }
  }

  /** @param {KeyboardEvent} ev */
  key(ev) {
    const li = /** @type {HTMLElement | null} */ (/** @type {Element} */ (ev.target).closest('li[role=treeitem]'));
    if (!li) return;
    const items = this.visibleItems();
    const i = items.indexOf(li);
    let handled = true;
    switch (ev.key) {
      case 'ArrowDown':
        if (i + 1 < items.length) this.focusItem(items[i + 1]);
        break;
      case 'ArrowUp':
        if (i > 0) this.focusItem(items[i - 1]);
        break;
      case 'Home':
        this.focusItem(items[0]);
        break;
      case 'End':
        this.focusItem(items[items.length - 1]);
        break;
      case 'ArrowRight':
        if (li.getAttribute('aria-expanded') === 'false') this.toggle(li, true);
        else if (li.getAttribute('aria-expanded') === 'true') this.focusItem(items[i + 1]);
        break;
      case 'ArrowLeft': {
        if (li.getAttribute('aria-expanded') === 'true') this.toggle(li, false);
        else {
          const parent = this.parentOf(li);
          if (parent) this.focusItem(parent);
        }
        break;
      }
      case 'Enter':
      case ' ':
        if (li.dataset.image !== undefined) this.select(Number(li.dataset.image), li);
        else if (li.dataset.ref !== undefined) this.select(Number(li.dataset.ref));
        break;
      default:
        handled = false;
    }
    if (handled) {
      ev.preventDefault();
      ev.stopPropagation();
    }
  }

  /** Select image `idx` (its item `li`, else found), open its ancestors, focus it. @param {number} idx @param {HTMLElement | null} [li] */
  select(idx, li) {
    this.finish();
    const f = this.forest;
    this.selected = f.images[idx]?.filename ?? null;
    for (const i of this.tree.querySelectorAll('li[role=treeitem]')) {
      const n = /** @type {HTMLElement} */ (i).dataset.image;
      i.setAttribute('aria-selected', String(n !== undefined && f.images[Number(n)]?.filename === this.selected));
    }
    li ??= this.itemOf(idx);
    if (!li && this.query) {
      // Filtered out: show everything again.
      this.setFilter('');
      li = this.itemOf(idx);
    }
    if (li) {
      // Open the ancestors (top first) so the selected node shows.
      const up = [];
      for (let p = this.parentOf(li); p; p = this.parentOf(p)) up.unshift(p);
      for (const p of up) this.toggle(p, true);
      this.focusItem(li);
    }
    this.renderDetails();
  }
}

/** A tree item's expanded state: its ARIA attribute and its arrow. @param {Element} li @param {boolean} open */
function setOpen(li, open) {
  li.setAttribute('aria-expanded', String(open));
  const tw = li.querySelector(':scope > .row > .twisty');
  if (tw) tw.textContent = open ? '▾' : '▸';
}

/** A command and its Copy button. @param {string} command */
function commandView(command) {
  return spaced(h(
        'div',
        { class: 'fix' },
        h('code', null, command),
        h(
          'button',
          {
            type: 'button',
            'aria-label': `Copy the command: ${command}`,
            onclick: async (/** @type {Event} */ ev) => {
              ev.stopPropagation();
              const b = /** @type {HTMLElement} */ (ev.target);
              const ok = await copyText(command, b.getRootNode());
              b.textContent = ok ? 'Copied' : 'Copy failed';
              setTimeout(() => (b.textContent = 'Copy'), 1500);
            },
          },
          'Copy',
        ),
      ));
}

/**
 * One diagnostic under its layer: what it says, its code (small), its fix
 * with a Copy button, or what to do when no command fixes it.
 * @param {Diagnostic} d @param {import('./editor-fixes.js').Advice | null} advice
 */
function diagView(d, advice) {
  return spaced(h(
    'div',
    { class: `diag ${d.severity}`, 'data-code': d.code },
    h('span', { class: 'sev', title: d.severity }, `${SEVERITY_ICON[d.severity] ?? ''} ${d.severity}`),
    h('span', { class: 'msg' }, d.message, ' ', h('span', { class: 'code' }, d.code)),
    d.fix ? h('div', { class: 'how' }, 'Fix:') : null,
    d.fix ? commandView(d.fix) : null,
    advice ? h('div', { class: 'how' }, advice.how) : null,
    advice?.command ? commandView(advice.command) : null,
  ));
}

/**
 * A space between the children of a flex or grid box: nothing on screen
 * (whitespace between such items is not laid out), but a name computed from
 * the content gets words, not "orphan.qcow2qcow21 GiB".
 * @template {HTMLElement} T @param {T} el @returns {T}
 */
function spaced(el) {
  for (const c of [...el.children].slice(1)) c.before(' ');
  return el;
}
