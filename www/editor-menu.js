// @ts-check
// A menu button (the kebab pattern: one tab stop per row, the actions
// inside), as the WAI-ARIA menu button pattern has it: Enter, Space or
// ArrowDown open the menu on its first item, ArrowUp on its last; inside,
// the arrows, Home and End move (roving focus), Enter or Space runs an item,
// Escape closes and gives the focus back to the button, Tab closes.

import { h } from './render.js';

/** @typedef {{ act: string, text: string, run(): void }} MenuItem */

let seq = 0;
let open = /** @type {{ close(focus: boolean): void } | null} */ (null);

/**
 * @param {string} label the button's accessible name ("Actions for layer 1 of vda")
 * @param {MenuItem[]} items
 * @param {Record<string, string>} [data] data- attributes of the button
 */
export function menuButton(label, items, data = {}) {
  const id = `bce-menu${++seq}`;
  const button = h('button', { type: 'button', class: 'kebab', 'aria-haspopup': 'menu', 'aria-expanded': 'false', 'aria-controls': id, 'aria-label': label, title: label, ...data }, h('span', { 'aria-hidden': 'true' }, '⋮'));
  const menu = h('ul', { role: 'menu', id, class: 'menu', 'aria-label': label, hidden: true });
  /** @type {HTMLElement[]} */
  const entries = items.map((it) =>
    h('li', { role: 'menuitem', tabindex: '-1', 'data-act': it.act, onclick: (/** @type {Event} */ ev) => {
      ev.stopPropagation();
      close(false);
      it.run();
    } }, it.text),
  );
  menu.append(...entries);
  const self = { close };
  /** @param {boolean} focus */
  function close(focus) {
    if (menu.hidden) return;
    menu.hidden = true;
    button.setAttribute('aria-expanded', 'false');
    if (open === self) open = null;
    if (focus) button.focus();
  }
  /** @param {number} at */
  function show(at) {
    open?.close(false);
    open = self;
    menu.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    focusAt(at);
  }
  /** @param {number} i */
  function focusAt(i) {
    const n = entries.length;
    const k = ((i % n) + n) % n;
    entries.forEach((e, j) => (e.tabIndex = j === k ? 0 : -1));
    entries[k].focus();
  }
  button.addEventListener('click', (ev) => {
    ev.stopPropagation();
    if (menu.hidden) show(0);
    else close(true);
  });
  button.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      show(ev.key === 'ArrowDown' ? 0 : -1);
    }
  });
  menu.addEventListener('keydown', (ev) => {
    const i = entries.indexOf(/** @type {HTMLElement} */ (ev.target));
    let handled = true;
    if (ev.key === 'ArrowDown') focusAt(i + 1);
    else if (ev.key === 'ArrowUp') focusAt(i - 1);
    else if (ev.key === 'Home') focusAt(0);
    else if (ev.key === 'End') focusAt(-1);
    else if (ev.key === 'Escape') close(true);
    else if (ev.key === 'Enter' || ev.key === ' ') /** @type {HTMLElement} */ (ev.target).click();
    else if (ev.key === 'Tab') {
      close(false);
      handled = false;
    } else handled = false;
    if (handled) {
      ev.preventDefault();
      ev.stopPropagation();
    }
  });
  menu.addEventListener('focusout', (ev) => {
    const to = /** @type {Node | null} */ (ev.relatedTarget);
    if (to && !menu.contains(to) && to !== button) close(false);
  });
  return h('div', { class: 'menu-wrap' }, button, menu);
}
