// @ts-check
// The "Domain XML" section: the text the user gives (typed, pasted, dropped),
// whether it parses (line and column of the error, "Go to the error"), and
// the base directory.

import { h, bytePosition } from './render.js';

/**
 * @typedef {import('./editor-model.js').EditorModel} EditorModel
 * @typedef {{ setDomain(text: string): void, setBaseDir(v: string): void, pasteJson(text: string): void }} DomainActions
 */

export class DomainView {
  /** @param {string} id @param {DomainActions} actions */
  constructor(id, actions) {
    /** @type {number | null} UTF-16 index of the error in the text */
    this.errorIndex = null;
    this.text = h('textarea', { id: `${id}-dom`, spellcheck: false, placeholder: "<domain type='kvm'>…<disk type='file' device='disk'>…<source file='/var/lib/libvirt/images/top.qcow2'/>…</disk>…</domain>" });
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    this.text.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => actions.setDomain(this.text.value), 250);
    });
    // Pasting qemu-img JSON adds its images instead of replacing the domain XML.
    this.text.addEventListener('paste', (ev) => {
      const pasted = ev.clipboardData?.getData('text/plain') ?? '';
      if (/^[[{]/.test(pasted.trim()) && !this.text.value.trim().startsWith('<')) {
        ev.preventDefault();
        actions.pasteJson(pasted);
      }
    });
    this.parse = h('p', { class: 'parse', 'aria-live': 'polite' });
    this.gotoError = h('button', { type: 'button', hidden: true, onclick: () => this.goto() }, 'Go to the error');
    this.baseDir = h('input', { type: 'text', id: `${id}-base`, placeholder: '/var/lib/libvirt/images', spellcheck: false });
    this.baseDir.addEventListener('change', () => actions.setBaseDir(this.baseDir.value));
    this.el = h(
      'section',
      { class: 'domain', 'aria-labelledby': `${id}-dh` },
      h('h2', { id: `${id}-dh` }, h('label', { for: `${id}-dom` }, 'Domain XML')),
      h('p', { class: 'hint meta' }, 'Paste or drop a libvirt domain (or <disk>) XML: the disk whose source file name matches a dropped top image gets its chain. Leave empty for bare <disk> elements. Pasting or dropping the output of qemu-img info --backing-chain --output=json adds its images.'),
      this.text,
      h('div', { class: 'field' }, this.parse, this.gotoError),
      h('div', { class: 'field' }, h('label', { for: `${id}-base` }, 'Base directory'), this.baseDir, h('span', { class: 'meta' }, 'turns dropped names into absolute paths (default: the directory of the disk’s source)')),
    );
  }

  /** The inputs show the model's text and base directory (set from script, undo). @param {{ domainText: string, baseDir: string }} m */
  sync(m) {
    if (this.text.value !== m.domainText) this.text.value = m.domainText;
    if (this.baseDir.value !== m.baseDir) this.baseDir.value = m.baseDir;
  }

  /** @param {boolean} ro */
  setReadonly(ro) {
    this.text.readOnly = ro;
    this.baseDir.readOnly = ro;
  }

  /** @param {EditorModel} m */
  render(m) {
    const { parse, text, gotoError } = this;
    const e = m.xmlError;
    if (e) {
      let where = '';
      if (e.position !== null) {
        const p = bytePosition(m.domainText, e.position);
        where = `line ${p.line}, column ${p.column}: `;
        this.errorIndex = p.index;
      } else this.errorIndex = null;
      parse.className = 'parse error';
      parse.setAttribute('role', 'alert');
      parse.textContent = `${where}${e.message}`;
      text.setAttribute('aria-invalid', 'true');
      gotoError.hidden = this.errorIndex === null;
    } else {
      parse.className = 'parse ok';
      parse.removeAttribute('role');
      parse.textContent = m.domainText.trim() ? 'The domain XML is well-formed.' : 'No domain XML: the result is bare <disk> elements, one per chain.';
      text.removeAttribute('aria-invalid');
      gotoError.hidden = true;
    }
  }

  goto() {
    if (this.errorIndex === null) return;
    this.text.focus();
    this.text.setSelectionRange(this.errorIndex, Math.min(this.errorIndex + 1, this.text.value.length));
  }
}
