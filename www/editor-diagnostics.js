// @ts-check
// The "Diagnostics" list: every diagnostic once, errors first; a click selects
// the image it is about. A long list is rendered in groups near the screen.

import { h, whenNear, SEVERITY_ICON } from './render.js';

/** Over 4 times this many diagnostics, groups of this many are rendered near the screen. */
const DIAG_GROUP = 50;

/** @typedef {import('./backing-chain-editor').Diagnostic & { image: string | null }} Item */

export class DiagnosticsView {
  /** @param {string} id @param {{ select(image: string | null): void }} actions */
  constructor(id, actions) {
    this.actions = actions;
    /** @type {IntersectionObserver | null} */
    this.seen = null;
    this.list = h('ul', null);
    this.empty = h('p', { class: 'empty' }, 'No diagnostics.');
    this.el = h('section', { class: 'diags', 'aria-labelledby': `${id}-gh` }, h('h2', { id: `${id}-gh` }, 'Diagnostics'), this.empty, this.list);
  }

  /** @param {Item[]} all */
  render(all) {
    /** @param {Item} d */
    const item = (d) =>
      h(
        'li',
        { 'data-code': d.code },
        h(
          'button',
          { type: 'button', onclick: () => this.actions.select(d.image) },
          h('span', { class: `sev ${d.severity}` }, `${SEVERITY_ICON[d.severity] ?? ''} ${d.severity}`),
          h('span', null, d.message, ' ', h('span', { class: 'code' }, `(${d.code})`)),
        ),
      );
    this.seen?.disconnect();
    if (all.length <= 4 * DIAG_GROUP) this.list.replaceChildren(...all.map(item));
    else {
      const groups = Array.from({ length: Math.ceil(all.length / DIAG_GROUP) }, (_, g) => h('li', { class: 'pending', 'aria-hidden': 'true', 'data-group': g }));
      this.list.replaceChildren(...groups);
      this.seen = whenNear(groups, (li) => {
        const g = Number(/** @type {HTMLElement} */ (li).dataset.group);
        li.replaceWith(...all.slice(g * DIAG_GROUP, (g + 1) * DIAG_GROUP).map(item));
      });
    }
    this.empty.hidden = all.length > 0;
  }
}
