// @ts-check
// What the element still works out itself from the core's results, kept here
// and nowhere else until the core says it. Each function says what moves to
// Rust; none of it is parsing the page should do.

const ENT = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };
/** @param {string} e @param {string | undefined} n @param {string} v */
const decode = (e, n, v) => {
  if (!n) return /** @type {Record<string, string>} */ (ENT)[v] ?? e;
  const c = parseInt(v, n.length > 1 ? 16 : 10);
  return c <= 0x10ffff ? String.fromCodePoint(c) : e;
};

/**
 * The `file='…'` attribute values of an XML document, entities decoded.
 * Moves to Rust: the core's XML output says which paths it wrote and how
 * (relative, or made absolute with a guessed directory), so that the
 * `dropped-paths` warning needs no second look at the XML.
 * @param {string} xml
 */
export const fileAttrs = (xml) => new Set([...xml.matchAll(/\sfile=(['"])(.*?)\1/g)].map((m) => m[2].replace(/&(#x?)?(\w+);/g, decode)));

/**
 * How many `<disk` elements an XML text has (counting any in comments: never fewer).
 * Moves to Rust: `xml::Output` gains a disk count.
 * @param {string} xml
 */
export const countDisks = (xml) => (xml.match(/<disk[\s/>]/g) ?? []).length;

/**
 * Bare `<disk>` elements (no domain XML) as one document edits can apply to:
 * one disk as is, several wrapped in a minimal `<domain>`; `null` for none.
 * Moves to Rust: `xml::edit` accepts a list of bare disks (or the core writes
 * the wrapper), instead of the element making up a `<domain>`.
 * @param {string} doc
 */
export function wrapBareDisks(doc) {
  const n = (doc.match(/^<disk /gm) ?? []).length;
  if (!n) return null;
  if (n === 1) return doc;
  const body = doc.replace(/^(?=.)/gm, '    ');
  return `<domain type='kvm'>\n  <name>backing-chain</name>\n  <memory unit='KiB'>524288</memory>\n  <os>\n    <type arch='x86_64'>hvm</type>\n  </os>\n  <devices>\n${body}  </devices>\n</domain>\n`;
}

/**
 * The main path of a described disk (`describeXml`): its layers from the top,
 * following `parent`, terminator excluded.
 * Moves to Rust: `xml::describe` gives each disk's main path.
 * @param {import('./backing-chain-wasm').DiskSummary} disk
 */
export function mainPath(disk) {
  /** @type {import('./backing-chain-wasm').XmlLayer[]} */
  const out = [];
  /** @type {number | null} */
  let cur = null;
  const seen = new Set();
  for (;;) {
    const n = disk.layers.findIndex((l) => (l.parent ?? null) === cur);
    if (n < 0 || seen.has(n) || !disk.layers[n].type) return out;
    seen.add(n);
    out.push(disk.layers[n]);
    cur = n;
  }
}

/**
 * The layer a chain diagnostic is about: the core says (`image`); else the
 * first layer whose name the message quotes; else the top.
 * Moves to Rust: every chain diagnostic carries its `image`.
 * @param {{ image?: unknown, message: string }} diag
 * @param {number[]} layers
 * @param {Array<{ filename: string }>} images
 */
export function ownerOf(diag, layers, images) {
  if (Number.isInteger(diag.image) && layers.includes(/** @type {number} */ (diag.image))) return /** @type {number} */ (diag.image);
  for (const m of diag.message.matchAll(/'([^']*)'/g)) {
    const i = layers.find((l) => images[l].filename === m[1]);
    if (i !== undefined) return i;
  }
  return layers[0];
}

/**
 * qcow2 external data files: image index → [the name its header gives, the
 * name of the file in `names` it resolves to, or undefined].
 * Moves to Rust: the forest resolves data-file names as it resolves backing names.
 * @param {Array<{ filename: string, 'format-specific'?: any }>} images
 * @param {string[]} names every known file name (images and parked data files)
 */
export function dataFiles(images, names) {
  /** @type {Map<number, [string, string | undefined]>} */
  const out = new Map();
  images.forEach((im, i) => {
    const n = im['format-specific']?.data?.['data-file'];
    if (typeof n !== 'string') return;
    const p = n.startsWith('/') ? n : im.filename.replace(/[^/]*$/, '') + n;
    out.set(i, [n, names.find((x) => x === p) ?? names.find((x) => p.endsWith(`/${x}`))]);
  });
  return out;
}

/**
 * Is `d` a chain's copy of one of `img`'s own probe diagnostics (same code,
 * the message prefixed with the image's quoted name)? Moves to Rust: the
 * chain could mark the notes it repeats from a probe.
 * @param {import('./backing-chain-editor').Diagnostic} d
 * @param {{ filename: string, diagnostics?: import('./backing-chain-editor').Diagnostic[] }} img
 */
export function repeatsProbe(d, img) {
  const prefix = `'${img.filename}': `;
  return d.message.startsWith(prefix) && (img.diagnostics ?? []).some((x) => x.code === d.code && prefix + x.message === d.message);
}
