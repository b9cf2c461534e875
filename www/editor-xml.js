// @ts-check
// The "XML" pane: the result, highlighted (a large one in pieces, near the
// screen), the mode and layout switches, Copy and Download.

import { h, highlightXml, xmlPieces, whenNear, copyText } from './render.js';
import { CorePanic, domainName } from './editor-wasm.js';

/** Over 4 times this many lines, the XML is highlighted in pieces of this many. */
const XML_PIECE = 100;

/**
 * @typedef {import('./editor-model.js').EditorModel} EditorModel
 * @typedef {{ setLayout(v: string): void, setMode(v: string): void }} XmlActions
 */

/** @param {string} id @param {string} name @param {string[]} values @param {(v: string) => void} set */
function radios(id, name, values, set) {
  return values.map((v, i) =>
    h('input', {
      type: 'radio',
      name: `${id}-${name}`,
      value: v,
      checked: i === 0,
      onchange: (/** @type {Event} */ ev) => {
        if (/** @type {HTMLInputElement} */ (ev.target).checked) set(v);
      },
    }),
  );
}

export class XmlView {
  /** @param {string} id @param {EditorModel} m @param {XmlActions} actions */
  constructor(id, m, actions) {
    this.m = m;
    /** @type {Map<string, HTMLElement> | null} highlighted pieces, by text */
    this.lit = null;
    /** @type {IntersectionObserver | null} */
    this.seen = null;
    this.layoutRadios = radios(id, 'layout', ['nested', 'flat'], (v) => actions.setLayout(v));
    this.modeRadios = radios(id, 'mode', ['populate', 'validate'], (v) => actions.setMode(v));
    const seg = h(
      'fieldset',
      { class: 'seg' },
      h('legend', { class: 'sr-only' }, 'Layout of <backingStore>'),
      h('label', null, this.layoutRadios[0], h('span', null, 'Nested (libvirt)')),
      h('label', null, this.layoutRadios[1], h('span', null, 'Flat (proposal)')),
    );
    const modeSeg = h(
      'fieldset',
      { class: 'seg mode' },
      h('legend', { class: 'sr-only' }, 'Mode'),
      h('label', { title: 'Disks without a chain get it from the images; chains in the XML are kept' }, this.modeRadios[0], h('span', null, 'Populate')),
      h('label', { title: 'Compare each chain in the XML with the images, layer by layer' }, this.modeRadios[1], h('span', null, 'Validate')),
    );
    this.copy = h('button', { type: 'button', onclick: () => this.copyXml() }, 'Copy');
    this.download = h('button', { type: 'button', onclick: () => this.downloadXml() }, 'Download');
    this.flatNote = h('p', { class: 'note', hidden: true }, 'The flat form (<alias name parent> on a list of <backingStore>) is a proposal: libvirt does not accept it today. Use the nested form with virsh.');
    this.stale = h('p', { class: 'note', hidden: true }, 'The domain XML has an error: showing the last valid result.');
    this.code = h('code', null);
    this.pre = h('pre', { class: 'xml', tabindex: '0', 'aria-label': 'Resulting XML' }, this.code);
    this.el = h(
      'section',
      { class: 'output', 'aria-labelledby': `${id}-xh` },
      h('div', { class: 'toolbar' }, h('h2', { id: `${id}-xh` }, 'XML'), h('span', { class: 'spacer' }), modeSeg, seg, this.copy, this.download),
      this.flatNote,
      this.stale,
      this.pre,
    );
  }

  /** The switches show the model's layout and mode. @param {{ layout: string, mode: string }} m */
  sync(m) {
    for (const r of this.layoutRadios) r.checked = r.value === m.layout;
    for (const r of this.modeRadios) r.checked = r.value === m.mode;
  }

  /** @param {EditorModel} m */
  render(m) {
    this.m = m;
    const xml = m.output?.xml ?? '';
    const code = this.code;
    this.seen?.disconnect();
    const lit = this.lit ?? new Map();
    this.lit = null;
    if (!xml) code.replaceChildren('(no images and no domain XML yet)');
    else if (xml.split('\n', 4 * XML_PIECE + 1).length <= 4 * XML_PIECE) code.replaceChildren(highlightXml(xml));
    else {
      // All the text at once (find, selection); highlighted near view, the
      // pieces highlighted before are kept (no flicker after an edit).
      const now = (this.lit = new Map());
      /** @type {Set<HTMLElement>} */
      const done = new Set();
      /** @param {Element} p */
      const show = (p) => {
        const text = /** @type {string} */ (p.textContent);
        now.set(text, /** @type {HTMLElement} */ (p));
        p.replaceChildren(highlightXml(text));
        done.add(/** @type {HTMLElement} */ (p));
      };
      const pieces = xmlPieces(xml, XML_PIECE).map((text) => {
        const old = lit.get(text);
        lit.delete(text);
        if (old) {
          now.set(text, old);
          done.add(old);
          return old;
        }
        const piece = h('span', { class: 'piece' }, text);
        piece.style.setProperty('--lines', String(text.split('\n').length));
        return piece;
      });
      if (!now.size) show(pieces[0]); // a new result shows its top
      code.replaceChildren(...pieces);
      this.seen = whenNear(pieces.filter((p) => !done.has(p)), show, this.pre);
    }
    this.flatNote.hidden = m.layout !== 'flat';
    this.stale.hidden = !m.xmlError;
    this.copy.disabled = !xml;
    this.download.disabled = !xml;
  }

  async copyXml() {
    const ok = await copyText(this.m.output?.xml ?? '', this.el.getRootNode());
    this.copy.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => (this.copy.textContent = 'Copy'), 1500);
  }

  downloadXml() {
    const blob = new Blob([this.m.output?.xml ?? ''], { type: 'application/xml' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: downloadName(this.m.goodDomain, this.m.layout), class: 'offscreen' });
    /** @type {ParentNode} */ (this.el.getRootNode()).append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}

/**
 * A download's name: the VM's `<name>` and the layout (`web1.xml`,
 * `web1.flat.xml`); `disks.xml` without a domain. The name is the core's
 * reading of the domain's `<name>` (`domainName`), kept to characters safe in
 * a file name.
 * @param {string} domain @param {string} layout
 */
export function downloadName(domain, layout) {
  let name = '';
  if (domain) {
    try {
      name = domainName(domain)?.trim() ?? '';
    } catch (e) {
      if (e instanceof CorePanic) throw e;
    }
  }
  name = name.replace(/[^A-Za-z0-9._+-]+/g, '_').replace(/^[._]+/, '').slice(0, 100) || (domain ? 'domain' : 'disks');
  return `${name}${layout === 'flat' ? '.flat' : ''}.xml`;
}
