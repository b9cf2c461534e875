// @ts-check
// DOM building for the editor. Everything that comes from files or XML is
// set as text (textContent / text nodes / setAttribute of plain attributes);
// no HTML string is ever parsed.

/**
 * A module imported on first use, not at first paint (issue 18):
 * `load()` imports it once (after a failed import, the next call tries
 * again); `module` is it once loaded, else null.
 * @template M @param {() => Promise<M>} importer
 * @returns {{ module: M | null, load(): Promise<M> }}
 */
export function onDemand(importer) {
  /** @type {Promise<M> | null} */
  let loading = null;
  /** @type {{ module: M | null, load(): Promise<M> }} */
  const self = {
    module: null,
    load() {
      loading ??= importer().then(
        (m) => (self.module = m),
        (e) => {
          loading = null;
          throw e;
        },
      );
      return loading;
    },
  };
  return self;
}

/**
 * h('div', {class: 'x', onclick: f}, child, 'text', …); children: nodes,
 * text, arrays of them; null/undefined/false are skipped.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag @param {Record<string, any> | null} props @param {...any} children
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = String(v);
      else if (k in PROPS) /** @type {any} */ (el)[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}
const PROPS = { value: 1, checked: 1, disabled: 1, hidden: 1, tabIndex: 1, readOnly: 1, spellcheck: 1 };

/** @param {HTMLElement} el @param {any[]} children */
function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
/** 1073741824 → "1 GiB"; exact bytes are shown next to it where it matters. */
/** @param {unknown} n */
export function humanSize(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '?';
  let u = 0;
  let v = n;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const s = u === 0 ? String(v) : v >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1);
  return `${s} ${UNITS[u]}`;
}

const COUNT = new Intl.NumberFormat('en');
/** @param {number} n */
export function formatCount(n) {
  return COUNT.format(n);
}

/**
 * What a probe read, for a tooltip: the bytes read from the file (ranges
 * close together are read in one piece) and, of them, the header bytes the
 * core used (its `bytes-read`).
 * @param {number} used @param {{ fileBytes?: number, fileReads?: number } | undefined} meta
 */
export function bytesReadText(used, meta) {
  const header = `${humanSize(used)} (${formatCount(used)} bytes: its header)`;
  if (!meta?.fileReads) return `read ${header} of the file`;
  const n = meta.fileReads;
  return `read ${humanSize(meta.fileBytes ?? 0)} of the file in ${n} read${n === 1 ? '' : 's'}, of which the probe used ${header}`;
}

/** One XML token: a comment, PI, CDATA section, declaration or tag. */
const TOKEN = /<!--[\s\S]*?(?:-->|$)|<\?[\s\S]*?(?:\?>|$)|<!\[CDATA\[[\s\S]*?(?:\]\]>|$)|<![^>]*>?|<\/?[^\s/>]+(?:\s+[^\s=/>]+(?:\s*=\s*(?:'[^']*'|"[^"]*"|[^\s>]*))?)*\s*\/?>?/g;

/** Split XML text into highlighted spans (text nodes inside spans). @param {string} text */
export function highlightXml(text) {
  const frag = document.createDocumentFragment();
  const re = new RegExp(TOKEN);
  let at = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > at) frag.append(document.createTextNode(text.slice(at, m.index)));
    frag.append(token(m[0]));
    at = m.index + m[0].length;
  }
  if (at < text.length) frag.append(document.createTextNode(text.slice(at)));
  return frag;
}

/** XML text in pieces of about `lines` lines, never cut inside a token: the
 *  pieces highlight as the whole does. @param {string} text @param {number} lines */
export function xmlPieces(text, lines) {
  const out = [];
  const re = new RegExp(TOKEN);
  const eol = (/** @type {number} */ i) => (text.indexOf('\n', i) + 1 || text.length);
  for (let start = 0, end = 0; start < text.length; start = end) {
    for (let n = 0; n < lines && end < text.length; n++) end = eol(end);
    // Past a token that runs over the cut, to the end of its line.
    re.lastIndex = start;
    for (let m; end < text.length && (m = re.exec(text)) && m.index < end; ) {
      if (re.lastIndex > end) end = eol(re.lastIndex);
    }
    out.push(text.slice(start, end));
  }
  return out;
}

/**
 * `show(el)` once each of `els` comes within a screen of view (of `root`, or the viewport).
 * @param {Element[]} els @param {(el: Element) => void} show @param {Element | null} [root]
 */
export function whenNear(els, show, root = null) {
  const io = new IntersectionObserver(
    (entries) => {
      for (const e of entries) {
        if (e.isIntersecting) {
          io.unobserve(e.target);
          show(e.target);
        }
      }
    },
    { root, rootMargin: '100% 0px' },
  );
  for (const el of els) io.observe(el);
  return io;
}

/** @param {string} cls @param {string} text */
function span(cls, text) {
  const s = document.createElement('span');
  s.className = cls;
  s.textContent = text;
  return s;
}

/** @param {string} t */
function token(t) {
  if (t.startsWith('<!--')) return span('x-comment', t);
  if (t.startsWith('<?') || t.startsWith('<!')) return span('x-meta', t);
  // A tag: name, then attributes.
  const frag = document.createDocumentFragment();
  const m = /** @type {RegExpExecArray} */ (/^(<\/?)([^\s/>]+)/.exec(t));
  frag.append(span('x-punct', m[1]), span('x-tag', m[2]));
  let rest = t.slice(m[0].length);
  const attr = /^(\s+)([^\s=/>]+)(?:(\s*=\s*)('[^']*'|"[^"]*"|[^\s>]*))?/;
  for (;;) {
    const a = attr.exec(rest);
    if (!a) break;
    frag.append(document.createTextNode(a[1]), span('x-attr', a[2]));
    if (a[3] !== undefined) frag.append(document.createTextNode(a[3]), span('x-value', a[4]));
    rest = rest.slice(a[0].length);
  }
  if (rest) frag.append(span('x-punct', rest));
  return frag;
}

/** Byte offset (UTF-8) in `text` → { index (UTF-16), line, column }. @param {string} text @param {number} byteOffset */
export function bytePosition(text, byteOffset) {
  const bytes = new TextEncoder().encode(text);
  const prefix = new TextDecoder().decode(bytes.subarray(0, Math.min(byteOffset, bytes.length)));
  const index = prefix.length;
  const lines = prefix.split('\n');
  return { index, line: lines.length, column: lines[lines.length - 1].length + 1 };
}

/** Copy text to the clipboard; resolves true when it worked. @param {string} text @param {Node} [fallbackHost] */
export async function copyText(text, fallbackHost) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Older/insecure contexts: a hidden textarea and execCommand.
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.className = 'offscreen';
    /** @type {ParentNode} */ (/** @type {unknown} */ (fallbackHost ?? document.body)).append(ta);
    ta.select();
    let ok;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    ta.remove();
    return ok;
  }
}

/** @type {Record<string, string>} */
export const SEVERITY_ICON = { error: '✖', warning: '▲', info: 'ℹ' };
