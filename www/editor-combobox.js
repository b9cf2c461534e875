// @ts-check
// A searchable pick list (the WAI-ARIA combobox pattern with a list popup,
// "list autocomplete"): a text input with role combobox; typing narrows the
// options (any part of the text), ArrowDown / ArrowUp move the active option
// (aria-activedescendant: the focus stays in the input), Enter or a click
// chooses it, Escape closes the list (a second Escape restores the value),
// Alt+ArrowDown opens it without moving. For hundreds of images: only the
// first SHOWN matches are in the list, with a line saying how many more.

import { h } from './render.js';

const SHOWN = 50;
let seq = 0;

/**
 * @typedef {{ value: string, text: string }} Option
 * @param {{ id: string, label: string, options: Option[], value: string, describedby?: string, choose(value: string): void }} spec
 */
export function combobox(spec) {
  const listId = `${spec.id}-list${++seq}`;
  const textOf = (/** @type {string} */ v) => spec.options.find((o) => o.value === v)?.text ?? v;
  const input = h('input', {
    type: 'text',
    id: spec.id,
    role: 'combobox',
    autocomplete: 'off',
    spellcheck: false,
    'aria-autocomplete': 'list',
    'aria-expanded': 'false',
    'aria-controls': listId,
    'aria-describedby': spec.describedby,
  });
  input.value = textOf(spec.value);
  const list = h('ul', { role: 'listbox', id: listId, class: 'listbox', 'aria-label': spec.label, hidden: true });
  /** @type {Option[]} */
  let shown = [];
  let active = -1;

  function fill() {
    const q = input.value.trim().toLowerCase();
    const all = q && q !== textOf(spec.value).toLowerCase() ? spec.options.filter((o) => o.text.toLowerCase().includes(q)) : spec.options;
    shown = all.slice(0, SHOWN);
    active = Math.min(active, shown.length - 1);
    list.replaceChildren(
      ...shown.map((o, i) =>
        h('li', { role: 'option', id: `${listId}-${i}`, 'aria-selected': String(i === active), 'data-value': o.value, class: o.value === spec.value ? 'current' : null, onmousedown: (/** @type {Event} */ ev) => ev.preventDefault(), onclick: () => pick(i) }, o.text),
      ),
      ...(all.length > SHOWN ? [h('li', { role: 'presentation', class: 'meta more' }, `${all.length - SHOWN} more: type to narrow`)] : []),
      ...(all.length ? [] : [h('li', { role: 'presentation', class: 'meta more' }, 'no image matches')]),
    );
    if (active >= 0) input.setAttribute('aria-activedescendant', `${listId}-${active}`);
    else input.removeAttribute('aria-activedescendant');
  }
  /** @param {boolean} on */
  function expand(on) {
    list.hidden = !on;
    input.setAttribute('aria-expanded', String(on));
    if (on) fill();
    else {
      active = -1;
      input.removeAttribute('aria-activedescendant');
    }
  }
  /** @param {number} i */
  function move(i) {
    if (list.hidden) expand(true);
    if (!shown.length) return;
    active = Math.max(0, Math.min(i, shown.length - 1));
    for (const li of list.querySelectorAll('[role=option]')) li.setAttribute('aria-selected', String(li.id === `${listId}-${active}`));
    input.setAttribute('aria-activedescendant', `${listId}-${active}`);
    list.querySelector(`#${CSS.escape(`${listId}-${active}`)}`)?.scrollIntoView({ block: 'nearest' });
  }
  /** @param {number} i */
  function pick(i) {
    const o = shown[i];
    expand(false);
    if (!o) return;
    input.value = o.text;
    if (o.value !== spec.value) spec.choose(o.value);
  }
  input.addEventListener('input', () => {
    active = -1;
    expand(true);
  });
  input.addEventListener('keydown', (ev) => {
    let handled = true;
    if (ev.key === 'ArrowDown') {
      if (ev.altKey) expand(true);
      else move(list.hidden ? 0 : active + 1);
    } else if (ev.key === 'ArrowUp') move(list.hidden ? shown.length - 1 : active - 1);
    else if (ev.key === 'Enter' && !list.hidden && active >= 0) pick(active);
    else if (ev.key === 'Escape') {
      if (!list.hidden) expand(false);
      else input.value = textOf(spec.value);
    } else handled = false;
    if (handled) {
      ev.preventDefault();
      ev.stopPropagation();
    }
  });
  input.addEventListener('click', () => expand(!!list.hidden));
  input.addEventListener('blur', () => {
    expand(false);
    input.value = textOf(spec.value);
  });
  return { input, el: h('div', { class: 'combo' }, input, list) };
}
