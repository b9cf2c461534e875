// @ts-check
// Metadata walks for the element (issue 17): allocation, map, measure and
// check of images already added, read through the same reader each image was
// added with (a Blob for dropped files, the host's `(offset, length) =>
// Promise<Uint8Array>` otherwise). The core (MetaWalk) says which ranges it
// needs, already merged into as few as it can; they are read a few at a time,
// progress is reported in bytes from the walk's plan, and an AbortSignal stops
// it between reads (nothing more is read once it is aborted). The walks run
// in the metadata module (a second wasm module, loaded on first use: issue
// 18); the element imports this module only when a walk is asked for.

import { loadMeta, newMetaChain, newMetaWalk } from './editor-wasm.js';

/** Upper bound on rounds of reads per image (the core bounds its own). */
const MAX_ROUNDS = 256;
/** Ranges read at once. */
const PARALLEL = 4;

/**
 * @typedef {import('./reader.js').Reader} Reader
 * @typedef {import('./backing-chain-wasm').MetaLayer} MetaLayer
 * @typedef {import('./backing-chain-wasm').MetaPlan} MetaPlan
 * @typedef {import('./backing-chain-wasm').MetaChainResult} MetaChainResult
 * @typedef {{ image: string, done: number, total: number, size: number, plan: MetaPlan | null }} Progress bytes read of the bytes the walk will read (`total` 0 while the header is probed) of a file of `size` bytes
 * @typedef {{ name: string, reader: Reader, size: number }} Source
 * @typedef {{ check?: boolean, signal?: AbortSignal, onProgress?: (p: Progress) => void }} WalkOptions
 * @typedef {import('./editor-wasm.js').MetaCore} MetaCore
 */

/** @param {AbortSignal | undefined} signal */
function stopIfAborted(signal) {
  if (signal?.aborted) throw signal.reason ?? new DOMException('The walk was aborted.', 'AbortError');
}

/**
 * Walk one image's metadata. Resolves to `{ layer, walk, bytesRead, reads, plan }`;
 * the walk is returned unfreed for a MetaChain of the same instance `meta`
 * (the caller frees it). Rejects with a WasmLoadError when the metadata
 * module cannot be loaded.
 * @param {Source} src @param {WalkOptions} [options] @param {MetaCore} [meta] the metadata instance (default: the current one, loaded on first use)
 */
export async function walkImage(src, { check = false, signal, onProgress } = {}, meta) {
  stopIfAborted(signal);
  if (!(src.size >= 0)) throw new Error(`${src.name}: the file size is not known (give addImage a size)`);
  const c = meta ?? (await loadMeta());
  stopIfAborted(signal);
  const walk = newMetaWalk(c, src.size, { check });
  try {
    /** @type {Array<[number, Uint8Array, number]>} */
    let chunks = [];
    let bytesRead = 0;
    let reads = 0;
    /** @type {MetaPlan | null} */
    let plan = null;
    const report = () => onProgress?.({ image: src.name, done: bytesRead, total: plan ? Math.max(plan['bytes-total'], bytesRead) : 0, size: src.size, plan });
    for (let round = 0; round < MAX_ROUNDS; round++) {
      /** @type {any} */
      const answer = walk.step(chunks);
      if (answer.layer) {
        if (plan) plan = { ...plan, 'bytes-total': bytesRead, exact: true };
        report();
        return { layer: /** @type {MetaLayer} */ (answer.layer), walk, bytesRead, reads, plan };
      }
      if (answer.plan) plan = answer.plan;
      report();
      /** @type {Array<{ offset: number, len: number }>} */
      const need = answer.need;
      /** @type {Array<[number, Uint8Array, number]>} */
      const fresh = new Array(need.length);
      let next = 0;
      const worker = async () => {
        while (next < need.length) {
          const i = next++;
          const { offset, len } = need[i];
          stopIfAborted(signal);
          const got = await src.reader(offset, len);
          stopIfAborted(signal);
          if (!(got instanceof Uint8Array)) throw new TypeError('the reader must resolve to a Uint8Array');
          const bytes = got.length > len ? got.subarray(0, len) : got;
          bytesRead += bytes.length;
          reads += 1;
          fresh[i] = [offset, bytes, len];
          report();
        }
      };
      await Promise.all(Array.from({ length: Math.min(PARALLEL, need.length) }, worker));
      // Only the new chunks: the walk keeps the header's earlier reads itself.
      chunks = fresh;
    }
    throw new Error(`${src.name}: the metadata walk asked for more than ${MAX_ROUNDS} rounds of reads`);
  } catch (e) {
    walk.free();
    throw e;
  }
}

/**
 * Walk the layers of a chain (top first) and put them together: `{ map,
 * summary, measure, commit, layers }` (`layers[d]`: `{ image, layer,
 * bytesRead, reads, size }`).
 * @param {Source[]} sources @param {WalkOptions} [options]
 */
export async function walkChain(sources, options = {}) {
  stopIfAborted(options.signal);
  const meta = await loadMeta();
  const chain = newMetaChain(meta);
  /** @type {Array<{ image: string, layer: MetaLayer, bytesRead: number, reads: number, size: number }>} */
  const layers = [];
  try {
    for (const src of sources) {
      const { layer, walk, bytesRead, reads } = await walkImage(src, options, meta);
      try {
        chain.push(walk);
      } finally {
        walk.free();
      }
      layers.push({ image: src.name, layer, bytesRead, reads, size: src.size });
    }
    /** @type {MetaChainResult} */
    const r = chain.result();
    return { ...r, layers };
  } finally {
    chain.free();
  }
}
