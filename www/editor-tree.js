// @ts-check
// The "Backing chains" view: the tree of chains (top → base, an ARIA tree
// with roving tabindex), each layer's diagnostics, and the selected image's
// details. `render(model)` redraws it; selection, collapsed and opened
// shared bases are this view's own state.

import { h, humanSize, copyText, SEVERITY_ICON } from './render.js';
import { renderDetails } from './editor-details.js';

/**
 * @typedef {import('./editor-model.js').EditorModel} EditorModel
 * @typedef {import('./backing-chain-editor').Diagnostic} Diagnostic
 * @typedef {import('./backing-chain-editor').Chain} Chain
 * @typedef {{ remove(name: string): void, setBacking(image: string, backing: string | null): void }} TreeActions
 */

export class TreeView {
  /** @param {string} id prefix of element ids @param {EditorModel} m @param {TreeActions} actions */
  constructor(id, m, actions) {
    this.id = id;
    this.actions = actions;
    this.m = m;
    /** @type {string | null} image filename */
    this.selected = null;
    /** @type {Set<string>} keys of collapsed items */
    this.collapsed = new Set();
    /** @type {Set<string>} shared bases whose overlays are listed */
    this.openShared = new Set();
    this.tree = h('ul', { role: 'tree', 'aria-label': 'Backing chains, top to base', id: `${id}-tree` });
    this.tree.addEventListener('keydown', (ev) => this.key(ev));
    this.empty = h('p', { class: 'empty' }, 'No images yet. Drop qcow2 (or other) disk images — top, middle and base layers — or a whole folder, and their chains appear here, top first.');
    this.details = h('div', { class: 'details', 'aria-live': 'polite' });
    this.el = h('section', { class: 'forest', 'aria-labelledby': `${id}-fh` }, h('h2', { id: `${id}-fh` }, 'Backing chains'), this.empty, this.tree, this.details);
  }

  get forest() {
    return this.m.f;
  }

  /** Forget the selection and collapsed items (the images were cleared). */
  reset() {
    this.selected = null;
    this.collapsed.clear();
  }

  /** @param {EditorModel} m */
  render(m) {
    this.m = m;
    this.renderTree();
    this.renderDetails();
  }

  renderDetails() {
    const m = this.m;
    renderDetails(this.details, m, this.selected, { id: this.id, select: (i) => this.select(i), ...this.actions });
  }

  renderTree() {
    const f = this.forest;
    const tree = this.tree;
    const root = /** @type {ShadowRoot | Document} */ (tree.getRootNode());
    const focusedKey = /** @type {HTMLElement | null} */ (root.activeElement)?.dataset?.key;
    tree.replaceChildren();
    this.empty.hidden = f.images.length > 0;
    tree.hidden = f.images.length === 0;
    if (!f.images.length) return;
    if (!f.images.some((im) => im.filename === this.selected)) this.selected = null;
    /** @type {HTMLElement[]} */
    const items = [];
    const all = document.createDocumentFragment();
    f.chains.forEach((chain, ci) => {
      // Diagnostics of this chain, attached to the layer they name.
      /** @type {Map<number, Diagnostic[]>} */
      const perLayer = new Map();
      for (const d of chain.diagnostics) {
        const o = this.m.ownerOf(d, chain.layers);
        // The chain repeats an image's own probe notes ('name': …): shown once, with the image.
        if (d['from-probe']) continue;
        if (!perLayer.has(o)) perLayer.set(o, []);
        perLayer.get(o)?.push(d);
      }
      /** @type {Node} */
      let parentGroup = all;
      chain.layers.forEach((idx, depth) => {
        const key = `${ci}/${depth}`;
        const item = this.item(idx, depth + 1, key, perLayer.get(idx) ?? [], depth === 0 ? chain : null);
        // Every layer has children: the next layer, or how the chain ends.
        setOpen(item, !this.collapsed.has(key));
        /** @type {ParentNode} */ (parentGroup).append(item);
        items.push(item);
        const group = h('ul', { role: 'group' });
        item.append(group);
        parentGroup = group;
      });
      // How the chain ends.
      const end = this.endItem(chain, chain.layers.length + 1, `${ci}/end`);
      /** @type {ParentNode} */ (parentGroup).append(end);
      items.push(end);
    });
    tree.append(all);
    // Roving tabindex: the focused, else the selected, else the first item.
    const target = items.find((i) => i.dataset.key === focusedKey) ?? items.find((i) => i.getAttribute('aria-selected') === 'true') ?? items[0];
    for (const i of items) i.tabIndex = i === target ? 0 : -1;
    if (focusedKey && target) target.focus();
  }

  /**
   * @param {number} idx @param {number} level @param {string} key
   * @param {Diagnostic[]} diags @param {Chain | null} chain the chain, on its top layer
   */
  item(idx, level, key, diags, chain) {
    const m = this.m;
    const f = this.forest;
    const img = f.images[idx];
    const selected = img.filename === this.selected;
    const sizeText = img['virtual-size'] !== undefined ? humanSize(img['virtual-size']) : null;
    /** @type {Record<string, number>} */
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
      chain ? h('span', { class: `badge ${chain.status === 'ok' ? '' : 'error'}` }, chain.status === 'ok' ? `${chain.layers.length} layer${chain.layers.length > 1 ? 's' : ''}` : chain.status) : null,
      ...['error', 'warning'].filter((s) => counts[s]).map((s) => h('span', { class: `badge ${s}` }, `${counts[s]} ${s}${counts[s] > 1 ? 's' : ''}`)),
    );
    const label = `${img.filename}, ${img.error ? 'unreadable' : img.format}${sizeText ? `, ${sizeText}` : ''}${counts.error ? `, ${counts.error} errors` : ''}`;
    const item = h('li', { role: 'treeitem', 'aria-level': String(level), 'aria-selected': String(selected), 'aria-label': label, 'data-key': key, 'data-image': String(idx) }, row);
    row.addEventListener('click', (ev) => {
      ev.stopPropagation();
      if (/** @type {Element} */ (ev.target).classList.contains('twisty')) this.toggle(item);
      this.select(idx, item);
    });
    const data = m.dataText(idx);
    if (data) item.append(h('div', { class: 'meta datafile' }, `data file: ${data}`));
    for (const d of [...(img.diagnostics ?? []), ...diags]) item.append(diagView(d));
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
    return item;
  }

  /** How a chain ends. @param {Chain} chain @param {number} level @param {string} key */
  endItem(chain, level, key) {
    const f = this.forest;
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
        text = `loop: back to ${f.images[/** @type {number} */ (link?.index)]?.filename ?? '?'}`;
        break;
      case 'remote':
        text = `remote source, not opened: ${link?.source?.protocol ?? link?.source?.type ?? ''} ${link?.source?.name ?? link?.source?.path ?? ''}`;
        bad = false;
        break;
      default:
        text = `chain stops here: ${chain.end}`;
    }
    return h('li', { role: 'treeitem', class: `end${bad ? ' bad' : ''}`, 'aria-level': String(level), 'aria-selected': 'false', 'data-key': key }, h('div', { class: 'row' }, h('span', { class: 'twisty', 'aria-hidden': 'true' }), text));
  }

  /** @returns {HTMLElement[]} */
  visibleItems() {
    return [...this.tree.querySelectorAll('li[role=treeitem]')].filter((li) => {
      for (let p = li.parentElement?.closest('li[role=treeitem]'); p; p = p.parentElement?.closest('li[role=treeitem]')) {
        if (p.getAttribute('aria-expanded') === 'false') return false;
      }
      return true;
    }).map((li) => /** @type {HTMLElement} */ (li));
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
    setOpen(li, next);
    const key = String(li.dataset.key);
    if (next) this.collapsed.delete(key);
    else this.collapsed.add(key);
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
        else if (li.getAttribute('aria-expanded') === 'true') this.focusItem(li.querySelector(':scope > ul > li[role=treeitem]'));
        break;
      case 'ArrowLeft': {
        if (li.getAttribute('aria-expanded') === 'true') this.toggle(li, false);
        else {
          const parent = /** @type {HTMLElement | null} */ (li.parentElement?.closest('li[role=treeitem]'));
          if (parent) this.focusItem(parent);
        }
        break;
      }
      case 'Enter':
      case ' ':
        if (li.dataset.image !== undefined) this.select(Number(li.dataset.image), li);
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
    const f = this.forest;
    this.selected = f.images[idx]?.filename ?? null;
    for (const i of this.tree.querySelectorAll('li[role=treeitem]')) {
      const n = /** @type {HTMLElement} */ (i).dataset.image;
      i.setAttribute('aria-selected', String(n !== undefined && f.images[Number(n)]?.filename === this.selected));
    }
    li ??= this.tree.querySelector(`li[data-image="${idx}"]`);
    if (li) {
      // Open the ancestors so the selected node shows.
      for (let p = li.parentElement?.closest('li[role=treeitem]'); p; p = p.parentElement?.closest('li[role=treeitem]')) this.toggle(/** @type {HTMLElement} */ (p), true);
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

/** One diagnostic under its layer, with its fix and a Copy button. @param {Diagnostic} d */
function diagView(d) {
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
            onclick: async (/** @type {Event} */ ev) => {
              ev.stopPropagation();
              const b = /** @type {HTMLElement} */ (ev.target);
              const ok = await copyText(/** @type {string} */ (d.fix), b.getRootNode());
              b.textContent = ok ? 'Copied' : 'Copy failed';
              setTimeout(() => (b.textContent = 'Copy'), 1500);
            },
          },
          'Copy',
        ),
      )
    : null;
  return h('div', { class: `diag ${d.severity}`, 'data-code': d.code }, h('span', { class: 'sev', title: d.severity }, `${SEVERITY_ICON[d.severity] ?? ''} ${d.severity}`), h('span', { class: 'msg' }, d.message), fix);
}
