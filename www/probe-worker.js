// @ts-check
// The probe worker (a module worker started by reader.js): the page posts the
// compiled wasm module, then Files in batches; here each File is read with
// Blob.slice, its probe loop run with a `Probe` (the same core as the
// page's; each chunk crosses into this instance once, however many rounds;
// the reads of the probes in flight made together: batchedBlobReads in
// reader.js), and what each probe read — its final chunks — goes back in
// batches, so that the page's session adds the image with one `probeQuiet` call
// (one crossing each), without reading again. Reads, probe loops and their
// waits stay off the page's main thread.
//
// In:  { module: WebAssembly.Module }, then { batch, files: File[] }.
// Out: { ready: true } | { failed: message } once started; then
//      { batch, results: [{ k, size, chunks, bytesRead, reads, fileReads, fileBytes, unreadable? }] }
//      (chunks: the ranges the core asked for; fileReads/fileBytes: the
//      reads from the file, ranges close together read in one: reader.js).

import init, { Probe } from './pkg/backing_chain.js';
import { batchedBlobReads, probeImage } from './reader.js';

/** Probes in flight at once (as on the page). */
const PARALLEL = 64;
/** Results are sent when this many are waiting, or after FLUSH_MS. */
const FLUSH_AT = 64;
const FLUSH_MS = 8;

/** The reads of the probes in flight, made together (reader.js). */
const reader = batchedBlobReads();
/** @type {Promise<unknown> | null} */
let ready = null;
/** @type {Array<{ batch: number, k: number, file: File }>} */
const queue = [];
let running = 0;
/** @type {Map<number, any[]>} batch → results not sent yet */
const out = new Map();
let waiting = 0;
/** @type {ReturnType<typeof setTimeout> | null} */
let timer = null;
let dead = false;

/** What the probes run against: a `Probe` per image, used up when it
 *  answers (the page's session adds the image from the chunks). A trap
 *  kills this worker: the page then probes what is left itself.
 *  @type {import('./reader.js').Prober} */
const prober = {
  newProbe(size) {
    const p = new Probe(size);
    return {
      step(chunks) {
        try {
          // Finished: `{ done: true }`, the facts not written (the page's
          // session adds the image from the chunks).
          return p.stepQuiet(chunks);
        } catch (e) {
          if (e instanceof WebAssembly.RuntimeError) dead = true;
          throw e;
        }
      },
      free: () => p.free(),
    };
  },
  addProbe(_name, probe) {
    probe.free();
  },
  addUnreadable() {},
};

function flush() {
  if (timer !== null) clearTimeout(timer);
  timer = null;
  for (const [batch, results] of out) {
    /** @type {Transferable[]} */
    const moved = [];
    for (const r of results) for (const c of r.chunks) if (!moved.includes(c[1].buffer)) moved.push(c[1].buffer);
    postMessage({ batch, results }, { transfer: moved });
  }
  out.clear();
  waiting = 0;
}

/** @param {number} batch @param {any} r */
function send(batch, r) {
  if (!out.has(batch)) out.set(batch, []);
  out.get(batch)?.push(r);
  if (++waiting >= FLUSH_AT) flush();
  else timer ??= setTimeout(flush, FLUSH_MS);
}

async function pump() {
  while (queue.length && !dead) {
    const { batch, k, file } = /** @type {{ batch: number, k: number, file: File }} */ (queue.shift());
    const r = await probeImage(prober, file.name, file.size, reader(file));
    if (dead) break;
    send(batch, { k, size: r.size, chunks: r.chunks, bytesRead: r.bytesRead, reads: r.reads, fileReads: r.fileReads, fileBytes: r.fileBytes, unreadable: r.unreadable });
  }
}

self.onmessage = async (/** @type {MessageEvent} */ ev) => {
  const d = ev.data;
  if (d.module) {
    ready = init({ module_or_path: d.module }).then(
      () => postMessage({ ready: true }),
      (e) => {
        dead = true;
        postMessage({ failed: String(e?.message ?? e) });
      },
    );
    return;
  }
  await ready;
  if (dead) return;
  d.files.forEach((/** @type {File} */ file, /** @type {number} */ k) => queue.push({ batch: d.batch, k, file }));
  while (running < PARALLEL && queue.length) {
    running++;
    pump().finally(() => {
      running--;
      if (dead) postMessage({ failed: 'the core stopped (a panic)' });
    });
  }
};
