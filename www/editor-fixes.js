// @ts-check
// Every error has a fix or says why there is none. The core's diagnostics
// carry a `fix` command where one exists; for a missing backing the page
// proposes the two ways out (copy it here, or rebase onto an image of the
// set, the command built by the core's fix builder); for the other errors
// without a command it says why.

import { rebaseCommand } from './editor-wasm.js';

/**
 * @typedef {import('./backing-chain-editor').Diagnostic} Diagnostic
 * @typedef {import('./backing-chain-editor').Forest} Forest
 * @typedef {{ how: string, command?: string }} Advice
 */

const CHOOSE = 'choose its Backing image in the details: the rebase command follows';

/** Why no command fixes an error, by code. @type {Record<string, string>} */
const WHY = {
  'backing-loop': `No single command: the loop is broken by rebasing one of its layers onto its real backing (${CHOOSE}).`,
  'ambiguous-backing': `Several images fit: ${CHOOSE}.`,
  'bad-backing-name': `The name cannot be parsed: rebase onto a valid one (${CHOOSE}).`,
  'backing-name-too-long': `qemu cannot open a name this long: rebase onto a shorter one (${CHOOSE}).`,
  unprobed: 'Nothing to run: the file could not be read (truncated, or not an image). Copy it again from the host.',
  'missing-extent': 'Copy the extent file next to its descriptor and drop it here too.',
  'external-data-file': 'No command makes it safe: the image makes qemu open a file outside the image directories. Do not attach it; convert the guest data if you trust it.',
  'vmdk-extent-path': 'No command makes it safe: the descriptor points qemu at a file outside the image directory. Do not attach it.',
  'vmdk-extent-protocol': 'No command makes it safe: the descriptor makes qemu open a network or json: source. Do not attach it.',
  'multiple-formats': 'No command makes it safe: the file is also a disk or ISO image, so its format is ambiguous. Do not attach it as an image.',
  'vmdk-footer-mismatch': 'The stream-optimized image is damaged: copy it again from its source.',
};

/**
 * What to do about a diagnostic on image `idx` that has no `fix` of its own:
 * advice for errors (and a missing backing), nothing for the rest.
 * @param {Diagnostic} d @param {number} idx @param {Forest} f @param {number[]} chainLayers
 * @returns {Advice | null}
 */
export function adviceFor(d, idx, f, chainLayers) {
  if (d.fix) return null;
  if (d.code === 'missing-backing') return missing(idx, f, chainLayers);
  if (d.severity !== 'error') return null;
  return { how: WHY[d.code] ?? 'No command fixes this here: see the message.' };
}

/** @param {number} idx @param {Forest} f @param {number[]} layers */
function missing(idx, f, layers) {
  const img = f.images[idx];
  const link = f.links[idx];
  const gone = link?.resolved ?? img['backing-filename'] ?? '?';
  const cand = candidate(idx, f, layers);
  const copy = `Copy '${gone}' here (drop it with the others: it is where '${img.filename}' looks for it)`;
  if (cand < 0 || !img.format) return { how: `${copy}, or rebase '${img.filename}' onto an image you have: ${CHOOSE}.` };
  const c = f.images[cand];
  return { how: `${copy}, or rebase onto '${c.filename}' (a base of the same size in the set):`, command: rebaseCommand(img.format, c.format ?? 'raw', c.filename, img.filename) };
}

/** A plausible replacement backing: an image of the same virtual size outside the chain, a base first. @param {number} idx @param {Forest} f @param {number[]} layers */
function candidate(idx, f, layers) {
  const size = f.images[idx]['virtual-size'];
  if (size === undefined) return -1;
  const inChain = new Set(layers);
  let best = -1;
  f.images.forEach((im, i) => {
    if (inChain.has(i) || im.error || im['virtual-size'] !== size) return;
    const base = f.links[i]?.kind === 'none';
    if (best < 0 || (base && f.links[best]?.kind !== 'none')) best = i;
  });
  return best;
}
