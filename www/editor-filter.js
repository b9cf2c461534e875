// @ts-check
// The filter over the tree: a search box (words match a chain by any layer's
// name or path, format, its disk's target, or a status keyword), Expand all /
// Collapse all, and how many chains show. The "/" key focuses the box (the
// element wires it). `match(words, facts)` is the rule; the box is the view.

import { h } from './render.js';

/**
 * What a chain is matched on (computed once per render by the tree).
 * @typedef {{ names: string[], formats: string[], disks: string[], status: string, end: string, severities: Set<string>, shared: boolean }} ChainFacts
 */

/** Status words a chain matches besides its `status` and `end` (see README, chain statuses). */
export const KEYWORDS = ['error', 'errors', 'warning', 'warnings', 'info', 'infos', 'shared', 'orphan', 'missing', 'ok', 'broken'];

/** The words of a filter (lower case; empty: everything shows). @param {string} q */
export function words(q) {
  return q.toLowerCase().split(/\s+/).filter(Boolean);
}

/**
 * Does a chain match every word? A word matches a layer's name or path
 * (substring), a format (exact), a disk target (exact), or a keyword:
 * `error`/`warning`/`info` (a diagnostic of that severity on the chain or its
 * layers), `shared` (a layer is a base of several overlays), `orphan` /
 * `missing` (its backing file is missing), `broken` (any error), `ok`, or a
 * status name (`loop`, `unprobed-format`, …).
 * @param {string[]} ws @param {ChainFacts} c
 */
export function match(ws, c) {
  return ws.every((w) => {
    const sev = w.replace(/s$/, '');
    if (sev === 'error' || sev === 'warning' || sev === 'info') return c.severities.has(sev);
    if (w === 'shared') return c.shared;
    if (w === 'orphan' || w === 'missing') return c.end === 'missing' || c.status === 'missing';
    if (w === 'broken') return c.severities.has('error');
    if (w === c.status || w === c.end) return true;
    return c.formats.includes(w) || c.disks.includes(w) || c.names.some((n) => n.toLowerCase().includes(w));
  });
}

export class FilterBar {
  /** @param {string} id @param {{ changed(q: string): void, expandAll(open: boolean): void }} actions */
  constructor(id, actions) {
    this.input = h('input', {
      type: 'search',
      id: `${id}-filter`,
      placeholder: 'name, format, error, shared, orphan…',
      spellcheck: false,
      autocomplete: 'off',
      'aria-keyshortcuts': '/',
      'aria-describedby': `${id}-filter-count`,
    });
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    this.input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => actions.changed(this.input.value), 120);
    });
    this.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && this.input.value) {
        ev.preventDefault();
        ev.stopPropagation();
        this.set('');
        actions.changed('');
      }
    });
    this.count = h('span', { class: 'meta', id: `${id}-filter-count`, 'aria-live': 'polite' });
    this.el = h(
      'div',
      { class: 'filter', role: 'search' },
      h('label', { for: `${id}-filter` }, 'Filter'),
      this.input,
      h('button', { type: 'button', 'data-act': 'expand-all', onclick: () => actions.expandAll(true) }, 'Expand all'),
      h('button', { type: 'button', 'data-act': 'collapse-all', onclick: () => actions.expandAll(false) }, 'Collapse all'),
      this.count,
    );
  }

  /** @param {string} q */
  set(q) {
    this.input.value = q;
  }

  /** @param {number} shown @param {number} total @param {boolean} filtered */
  counted(shown, total, filtered) {
    this.count.textContent = filtered ? `${shown} of ${total} chain${total === 1 ? '' : 's'} match` : `${total} chain${total === 1 ? '' : 's'}`;
  }
}
