// @ts-check
// The summary at the top, once something is loaded: how many errors,
// warnings and infos (each a link that filters the tree to the chains that
// have them), the first messages of the worst kind (each selects its image),
// and how many chains and images.

import { h, formatCount, SEVERITY_ICON } from './render.js';

/** @typedef {import('./backing-chain-editor').Diagnostic & { image: string | null }} Item */

/** First messages shown. */
const FIRST = 3;

export class SummaryView {
  /** @param {string} id @param {{ filter(q: string): void, select(image: string | null): void }} actions */
  constructor(id, actions) {
    this.actions = actions;
    this.counts = h('p', { class: 'counts' });
    this.first = h('ul', { class: 'first' });
    this.el = h('section', { class: 'summary', 'aria-labelledby': `${id}-sh`, hidden: true }, h('h2', { id: `${id}-sh`, class: 'sr-only' }, 'Summary'), this.counts, this.first);
  }

  /** @param {Item[]} diags @param {{ chains: number, images: number, errorChains: number }} n */
  render(diags, n) {
    this.el.hidden = !n.images && !diags.length;
    /** @type {Record<string, Item[]>} */
    const by = { error: [], warning: [], info: [] };
    for (const d of diags) by[d.severity]?.push(d);
    /** @param {'error' | 'warning' | 'info'} s */
    const link = (s) => {
      const k = by[s].length;
      const text = `${formatCount(k)} ${s}${k === 1 ? '' : 's'}`;
      if (!k) return h('span', { class: `count none` }, text);
      return h('button', { type: 'button', class: `linkish count ${s}`, 'data-filter': s, title: `show only the chains with ${s}s`, onclick: () => this.actions.filter(s) }, h('span', { 'aria-hidden': 'true' }, `${SEVERITY_ICON[s]} `), text);
    };
    const chains = `${formatCount(n.chains)} chain${n.chains === 1 ? '' : 's'}, ${formatCount(n.images)} image${n.images === 1 ? '' : 's'}`;
    const verdict = n.errorChains ? `${formatCount(n.errorChains)} chain${n.errorChains === 1 ? '' : 's'} with errors, listed first` : n.images ? 'no chain has an error' : '';
    this.counts.replaceChildren(link('error'), ' · ', link('warning'), ' · ', link('info'), h('span', { class: 'meta' }, ` — ${chains}${verdict ? `; ${verdict}` : ''}`));
    const worst = by.error.length ? by.error : by.warning;
    this.first.replaceChildren(
      ...worst.slice(0, FIRST).map((d) =>
        h(
          'li',
          { 'data-code': d.code },
          h('button', { type: 'button', class: 'linkish', onclick: () => this.actions.select(d.image) }, h('span', { class: `sev ${d.severity}` }, `${SEVERITY_ICON[d.severity]} `), d.message),
        ),
      ),
      ...(worst.length > FIRST ? [h('li', { class: 'meta' }, `and ${formatCount(worst.length - FIRST)} more in Diagnostics`)] : []),
    );
  }
}
