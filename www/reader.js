// @ts-check
// Reading images the sans-I/O way: the core says which byte ranges it needs,
// we read them (Blob.slice for files, or a host-supplied reader) and call it
// again with exactly those bytes. Never the whole file. Reading a Blob, the
// ranges of one round that lie close together are read in one read (a
// browser's cost is per read, not per byte); the core still gets only the
// ranges it asked for. A host's reader is asked for the ranges as the core
// asks, unless it says otherwise (`span`).

/** Upper bound on probe rounds on this side too (the core bounds its own). */
const MAX_ROUNDS = 64;
/** Upper bound on one read (the core caps its requests lower). */
const MAX_READ = 16 * 1024 * 1024;
/**
 * The ranges of one probe round are read together, in one read, while the
 * bytes from the first one's start to the last one's end stay within this
 * span: a qcow2's first round (its 4 KiB header and the 7 bytes at 32768 of
 * the ISO/UDF check) is one read of 32,775 bytes instead of two reads.
 * Chromium's cost is per read (an IPC and a file open each): 1,000 files
 * read with one 32 KiB slice each take about 0.6× the time of two slices
 * each (BENCHMARKS.md). The span is a reader's own: Blob readers carry
 * this one; a host's reader none (0: each range as the core asks) unless
 * given one (`addImage(name, reader, { span })`).
 */
export const COALESCE_SPAN = 64 * 1024;

/**
 * @typedef {((offset: number, length: number) => Promise<Uint8Array>) & { span?: number }} Reader `span`: the ranges of a round within this many bytes are asked of it in one call (`coalesce`; none: each range as asked)
 * @typedef {{ offset: number, len: number, parts: number[] }} Span one read from the file: `parts` are the indices of the ranges it covers
 * @typedef {[number, Uint8Array, number]} Chunk `[offset, bytes, askedLength]`: the bytes read for one range the core asked for
 * @typedef {{ step(chunks: Chunk[]): any, free(): void }} ProbeState one image's probe, kept in the wasm (its `Probe`): each step is given only the chunks read since the last
 * @typedef {{ newProbe(size: number): ProbeState, addProbe(name: string, probe: ProbeState): void, addUnreadable(name: string, message: string): void }} Prober what probes images: a wasm `Session` (`addProbe` adds the finished probe's image and uses the probe up), or a worker's own
 * @typedef {{ file: File | Promise<File>, path: string, from?: string }} Entry
 */

/** A reader over a Blob/File (or a promise of one): (offset, length) → Promise<Uint8Array>; its span is COALESCE_SPAN. @param {Blob | Promise<Blob>} file @returns {Reader} */
export function blobReader(file) {
  /** @type {Reader} */
  const read = async (offset, length) => {
    const blob = await file;
    const end = Math.min(blob.size, offset + length);
    if (offset >= end) return new Uint8Array(0);
    return new Uint8Array(await blob.slice(offset, end).arrayBuffer());
  };
  read.span = COALESCE_SPAN;
  return read;
}

/** A read of many Blobs at once takes at most this many parts (16: 0.73×
 *  the time of a drop of 1,000 files read one by one, 8: 0.79×, 64: 0.91×;
 *  BENCHMARKS.md)… */
const BATCH_PARTS = 16;
/** …and this many bytes. */
const BATCH_BYTES = 8 << 20;

/**
 * Readers over Blobs whose reads are made together: the reads asked for in
 * one task (the probes of many files, each in its round) are one read of a
 * Blob made of their slices (`new Blob(slices).arrayBuffer()`), up to
 * BATCH_PARTS slices and BATCH_BYTES bytes each, instead of one read per
 * slice. Chromium's cost of a read is mostly per read (an IPC, a data pipe,
 * a blob reader in the browser), so 16 files' headers read as one cost far
 * less than 16 reads (BENCHMARKS.md). When the read of the whole fails (one
 * file changed on disk or gone), each slice is read on its own again, so
 * only that file's read fails. Each reader resolves to a copy of its bytes
 * (their own buffer: transferable). Returns `blob → Reader`.
 * @param {number} [parts] at most this many slices per read (1: each alone)
 */
export function batchedBlobReads(parts = BATCH_PARTS) {
  /** @type {Array<{ blob: Blob, offset: number, end: number, ok: (b: Uint8Array) => void, ko: (e: unknown) => void }>} */
  let pending = [];
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  /** @param {typeof pending} group */
  const readAlone = (group) => {
    for (const r of group) r.blob.slice(r.offset, r.end).arrayBuffer().then((b) => r.ok(new Uint8Array(b)), r.ko);
  };
  /** @param {typeof pending} group */
  const readTogether = async (group) => {
    if (group.length === 1) return readAlone(group);
    /** @type {ArrayBuffer} */
    let all;
    try {
      all = await new Blob(group.map((r) => r.blob.slice(r.offset, r.end))).arrayBuffer();
    } catch {
      return readAlone(group);
    }
    const total = group.reduce((n, r) => n + r.end - r.offset, 0);
    if (all.byteLength !== total) return readAlone(group);
    let at = 0;
    for (const r of group) {
      const n = r.end - r.offset;
      r.ok(new Uint8Array(all.slice(at, at + n)));
      at += n;
    }
  };
  const flush = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    const todo = pending;
    pending = [];
    for (let i = 0; i < todo.length; ) {
      let bytes = 0;
      let j = i;
      while (j < todo.length && j - i < parts && (j === i || bytes + todo[j].end - todo[j].offset <= BATCH_BYTES)) bytes += todo[j].end - todo[j++].offset;
      readTogether(todo.slice(i, j));
      i = j;
    }
  };
  return (/** @type {Blob} */ blob) => {
    /** @type {Reader} */
    const read = (offset, length) => {
      const end = Math.min(blob.size, offset + length);
      if (offset >= end) return Promise.resolve(new Uint8Array(0));
      return new Promise((ok, ko) => {
        pending.push({ blob, offset, end, ok, ko });
        if (pending.length >= parts) flush();
        else timer ??= setTimeout(flush, 0);
      });
    };
    read.span = COALESCE_SPAN;
    return read;
  };
}

/**
 * The reads that cover the ranges `need` of one round: ranges (in offset
 * order, the longer first at one offset) go into one read while it spans at most `span` bytes from its first
 * byte to its last; a range inside a read already made joins it whatever its
 * size. Each range is in exactly one read; a read never starts before its
 * first range nor ends after its last, so it asks for nothing past the end
 * the core asked for. `span` 0: one read per range, as asked.
 * @param {Array<{ offset: number, len: number }>} need @param {number} [span]
 * @returns {Span[]}
 */
export function coalesce(need, span = COALESCE_SPAN) {
  const order = need.map((_, n) => n).sort((a, b) => need[a].offset - need[b].offset || need[b].len - need[a].len);
  /** @type {Span[]} */
  const out = [];
  for (const n of order) {
    const { offset, len } = need[n];
    const last = out[out.length - 1];
    const end = offset + len;
    if (last && offset >= last.offset && (end <= last.offset + last.len || end - last.offset <= span)) {
      last.len = Math.max(last.len, end - last.offset);
      last.parts.push(n);
    } else {
      out.push({ offset, len, parts: [n] });
    }
  }
  return out;
}

/**
 * Run the probe loop for one image against a wasm `Session`: a `Probe` of
 * the session's (`session.newProbe(size)`) keeps the bytes read, each round
 * gives it only the chunks just read (each chunk crosses into the wasm
 * once), and the finished probe's image is added with `addProbe`.
 * `size` is the file length or -1 when unknown (or a promise of it). Resolves
 * to `{ name, size, bytesRead, reads, fileReads, fileBytes, result, chunks }`
 * where `result` is the core's last answer (`{info}` or `{error}`), `chunks`
 * the ranges the core asked for with their bytes, `bytesRead` and `reads`
 * their bytes and count (what the core used), `fileReads` and `fileBytes`
 * the reader's calls and the bytes they returned (what was read from the
 * file: the ranges of a round within `span` bytes — by default the
 * reader's own, `reader.span`, else 0 — are one call, see `coalesce`); a
 * reader failure adds the image as unreadable and resolves
 * with `{error}` and `unreadable` (the message). `from` continues a probe
 * begun elsewhere (the chunks read so far, given in the first step, and their counts).
 * @param {Prober} session @param {string} name @param {number | Promise<number> | undefined} size @param {Reader} reader
 * @param {{ chunks?: Chunk[], bytesRead?: number, reads?: number, fileReads?: number, fileBytes?: number, span?: number }} [from]
 */
export async function probeImage(session, name, size, reader, { chunks = /** @type {Chunk[]} */ ([]), bytesRead = 0, reads = 0, fileReads = 0, fileBytes = 0, span = reader.span ?? 0 } = {}) {
  /** @type {ProbeState | null} */
  let probe = null;
  try {
    size = (await size) ?? -1;
    probe = session.newProbe(size);
    /** The chunks the probe has not been given yet. */
    let fresh = chunks.slice();
    for (let round = 0; round < MAX_ROUNDS; round++) {
      /** @type {{ need?: Array<{ offset: number, len: number }> }} */
      const answer = probe.step(fresh);
      if (!answer.need) {
        const done = probe;
        probe = null;
        session.addProbe(name, done);
        return { name, size, bytesRead, reads, fileReads, fileBytes, result: answer, chunks };
      }
      fresh = [];
      const want = answer.need.map(({ offset, len }) => ({ offset, len: Math.min(len, MAX_READ) }));
      // The reads of one round go out together, ranges close together in one read.
      const spans = coalesce(want, span);
      const got = await Promise.all(spans.map((s) => reader(s.offset, s.len)));
      /** @type {Uint8Array[]} */
      const parts = new Array(want.length);
      spans.forEach((s, k) => {
        const g = got[k];
        if (!(g instanceof Uint8Array)) throw new TypeError('the reader must resolve to a Uint8Array');
        fileReads += 1;
        fileBytes += Math.min(g.length, s.len);
        if (s.parts.length === 1) {
          parts[s.parts[0]] = g.length > s.len ? g.subarray(0, s.len) : g;
          return;
        }
        // The ranges asked for, copied out of the read into one buffer of
        // their own (the core gets and keeps only those bytes).
        const at = s.parts.map((n) => Math.min(g.length, want[n].offset - s.offset));
        const lens = s.parts.map((n, i) => Math.max(0, Math.min(g.length - at[i], want[n].len)));
        const own = new Uint8Array(lens.reduce((a, b) => a + b, 0));
        let o = 0;
        s.parts.forEach((n, i) => {
          own.set(g.subarray(at[i], at[i] + lens[i]), o);
          parts[n] = own.subarray(o, o + lens[i]);
          o += lens[i];
        });
      });
      answer.need.forEach(({ offset, len }, n) => {
        bytesRead += parts[n].length;
        reads += 1;
        /** @type {Chunk} */
        const c = [offset, parts[n], len];
        chunks.push(c);
        fresh.push(c);
      });
    }
    throw new Error(`the probe asked for more than ${MAX_ROUNDS} rounds of reads`);
  } catch (e) {
    try {
      probe?.free();
    } catch {
      // its instance trapped: nothing to free
    }
    const x = /** @type {any} */ (e);
    const message = `cannot read: ${x && x.message ? x.message : String(x)}`;
    session.addUnreadable(name, message);
    return { name, size: typeof size === 'number' ? size : -1, bytesRead, reads, fileReads, fileBytes, result: { error: message }, chunks, unreadable: message };
  }
}

/** Names that are files, never folders: disk images and the documents a drop may hold. */
const FILE_NAME = /\.(qcow2?|qed|cow|vmdk|vhdx?|vpc|vdi|hdd|img|raw|iso|dmg|luks|bochs|cloop|xml|json)$/i;

/**
 * Collect the files of a drop (files and whole folders). Every
 * DataTransferItem is grabbed synchronously — the list is emptied once the
 * event handler returns — and only then walked asynchronously.
 * Resolves to `[{ file, path }]`.
 * @param {DataTransfer} dataTransfer
 * @returns {Promise<Entry[]>}
 */
export function collectDrop(dataTransfer) {
  /** @type {any[]} */
  const entries = [];
  /** @type {File[]} */
  const loose = [];
  const items = dataTransfer.items ? Array.from(dataTransfer.items) : [];
  // Chromium: webkitGetAsEntry and File.size cost a synchronous round trip
  // to the browser each; handles do not, and their Files know their size.
  const files = items.filter((i) => i.kind === 'file');
  // getAsFileSystemHandle: Chromium only, not in TypeScript's DOM types.
  /** @type {any[]} */
  const withHandles = files;
  // A name with a disk image's or document's extension is taken as a file
  // without asking (getAsFile costs nothing: 1,000 items in ~1 ms, against
  // 30–260 ms of handles or entries); the others may be folders.
  const plain = files.map((i) => i.getAsFile());
  const known = plain.map((f) => !!f && FILE_NAME.test(f.name));
  if (files.length && withHandles.every((i, n) => known[n] || i.getAsFileSystemHandle)) {
    return Promise.all(withHandles.map((i, n) => (known[n] ? plain[n] : i.getAsFileSystemHandle().catch(() => plain[n])))).then(walkHandles).then(rebase);
  }
  for (const item of items) {
    if (item.kind !== 'file') continue;
    const n = files.indexOf(item);
    if (known[n]) {
      loose.push(/** @type {File} */ (plain[n]));
      continue;
    }
    const entry = typeof item.webkitGetAsEntry === 'function' ? item.webkitGetAsEntry() : null;
    // Folders are walked; a file is taken as is (getAsFile is synchronous,
    // entry.file() would be one round trip to the browser per file).
    if (entry?.isDirectory) entries.push(entry);
    else {
      const f = item.getAsFile();
      if (f) loose.push(f);
    }
  }
  if (!items.length && dataTransfer.files) loose.push(...Array.from(dataTransfer.files));
  return (async () => {
    /** @type {Entry[]} */
    const out = loose.map((file) => ({ file, path: file.name }));
    for (const entry of entries) await walkEntry(entry, out);
    return rebase(out);
  })();
}

/** @param {any} root a FileSystemDirectoryEntry @param {Entry[]} out */
async function walkEntry(root, out) {
  // Iterative walk: no recursion however deep the folder is.
  const stack = [root];
  while (stack.length) {
    const entry = stack.pop();
    if (entry.isFile) {
      // The files of a folder are asked for together, not one after another.
      const files = [entry];
      while (stack.length && stack[stack.length - 1].isFile) files.push(stack.pop());
      /** @type {File[]} */
      const got = await Promise.all(files.map((e) => new Promise((ok, ko) => e.file(ok, ko))));
      got.forEach((file, i) => out.push({ file, path: files[i].fullPath.replace(/^\/+/, '') || file.name }));
    } else if (entry.isDirectory) {
      const dir = entry.createReader();
      // readEntries returns at most ~100 entries per call: call until empty.
      for (;;) {
        /** @type {any[]} */
        const batch = await new Promise((ok, ko) => dir.readEntries(ok, ko));
        if (!batch.length) break;
        stack.push(...batch);
      }
    }
  }
}

/** Files under File System Access handles, `[{ file: Promise<File>, path }]`,
 *  folders walked without recursion. @param {any[]} roots handles (or Files where a handle was refused) */
async function walkHandles(roots) {
  /** @type {Entry[]} */
  const out = [];
  const queue = roots.filter(Boolean).map((handle) => ({ handle, path: handle.name }));
  for (let i = 0; i < queue.length; i++) {
    const { handle, path } = queue[i];
    if (handle instanceof File) out.push({ file: handle, path }); // refused a handle
    else if (handle.kind === 'file') {
      const file = handle.getFile();
      file.catch(() => {}); // reported when read
      out.push({ file, path });
    } else if (handle.kind === 'directory') {
      for await (const h of handle.values()) queue.push({ handle: h, path: `${path}/${h.name}` });
    }
  }
  return out;
}

/** Files from an <input type=file> (webkitRelativePath for folder pickers). @param {FileList | File[]} fileList */
export function filesFromList(fileList) {
  return rebase(Array.from(fileList, (file) => ({ file, path: file.webkitRelativePath || file.name })));
}

/** Names relative to what was dropped: one folder alone is the root. @param {Entry[]} list @returns {Entry[]} */
export function rebase(list) {
  const tops = new Set(list.filter((e) => e.path.includes('/') || !isDocument(e.path)).map((e) => e.path.split('/')[0]));
  const one = tops.size === 1;
  return list.map((e) => {
    const at = e.path.indexOf('/');
    if (at < 0) return e;
    return one ? { ...e, path: e.path.slice(at + 1), from: `the dropped folder '${e.path.slice(0, at)}'` } : { ...e, from: 'the folder the items were dropped from' };
  });
}

/** Is this dropped file a document (XML / JSON) rather than an image? @param {string} path */
export function isDocument(path) {
  return /\.(xml|json)$/i.test(path);
}

/** Read a small text file (domain XML); refuse big ones. @param {File} file */
export async function readText(file, limit = 8 * 1024 * 1024) {
  if (file.size > limit) throw new Error(`${file.name} is ${file.size} bytes: too big for an XML document`);
  return file.text();
}

/**
 * @typedef {{ name: string, size?: number | Promise<number>, reader: Reader, file?: File | Promise<File>, span?: number }} ProbeJob `span`: see `coalesce` (default: the reader's own)
 * @typedef {{ name: string, size: number, bytesRead: number, reads: number, fileReads: number, fileBytes: number, result: unknown, chunks: Chunk[], unreadable?: string }} ProbeResult
 *   `chunks`: every chunk the probe was given (a session of another wasm instance adds the same image from them: `Session.probe`), `unreadable`: why the file could not be read at all
 * @typedef {{ k: number, size: number, chunks: Chunk[], bytesRead: number, reads: number, fileReads: number, fileBytes: number, unreadable?: string }} WorkerResult
 */

/** How long a probe worker may take to start before its files are probed here instead. */
const WORKER_START_MS = 10_000;

/** The probe worker's URL, beside this module; null where this module was
 *  bundled (its URL names another file, or none: a classic bundle). */
function workerUrl() {
  try {
    const here = new URL(import.meta.url);
    return here.pathname.endsWith('/reader.js') ? new URL('./probe-worker.js', here) : null;
  } catch {
    return null;
  }
}

/**
 * The page's one probe worker (probe-worker.js): Files go in, the chunks each
 * probe needed come back in batches. Null where workers are unavailable
 * (a bundle, no Worker, a CSP without worker-src for it) or one failed.
 */
class ProbeWorker {
  /** @param {URL} url @param {WebAssembly.Module} module */
  constructor(url, module) {
    this.failed = false;
    this.next = 0;
    /** @type {Map<number, { got(r: WorkerResult): void, fail(): void }>} */
    this.batches = new Map();
    this.worker = new Worker(url, { type: 'module', name: 'backing-chain probe' });
    const fail = () => this.fail();
    this.worker.addEventListener('error', (ev) => {
      ev.preventDefault();
      fail();
    });
    this.worker.addEventListener('messageerror', fail);
    this.timer = setTimeout(fail, WORKER_START_MS);
    this.worker.addEventListener('message', (ev) => {
      const d = ev.data;
      if (d.ready) clearTimeout(this.timer);
      else if (d.failed) fail();
      else if (d.results) for (const r of d.results) this.batches.get(d.batch)?.got(r);
    });
    this.worker.postMessage({ module });
  }

  fail() {
    if (this.failed) return;
    this.failed = true;
    clearTimeout(this.timer);
    this.worker.terminate();
    for (const b of this.batches.values()) b.fail();
    this.batches.clear();
  }

  /**
   * Probe `files` in the worker; `got(k, result)` for the k-th as it comes.
   * Resolves to the ks left unprobed when the worker failed (else none).
   * @param {File[]} files @param {(k: number, r: WorkerResult) => void} got @returns {Promise<number[]>}
   */
  probe(files, got) {
    if (this.failed) return Promise.resolve(files.map((_, k) => k));
    const batch = this.next++;
    const left = new Set(files.keys());
    return new Promise((ok) => {
      this.batches.set(batch, {
        got: (r) => {
          if (!left.delete(r.k)) return;
          got(r.k, r);
          if (!left.size) {
            this.batches.delete(batch);
            ok([]);
          }
        },
        fail: () => ok([...left]),
      });
      if (!files.length) ok([]);
      else this.worker.postMessage({ batch, files });
    });
  }
}

/**
 * Resolves in a task of its own, queued at once (a MessageChannel message):
 * a chain of `setTimeout(0)` is held back 4 ms a step from its fifth step
 * on, idle time between the groups of Files posted to the worker (~60 ms
 * of a 1,000-file drop's ~500 ms of posting).
 * @returns {Promise<void>}
 */
function nextTask() {
  return new Promise((ok) => {
    const c = new MessageChannel();
    c.port1.onmessage = () => {
      c.port1.close();
      ok();
    };
    c.port2.postMessage(null);
  });
}

/** @type {ProbeWorker | null} */
let probeWorker = null;
/** A worker was refused at once (a CSP): not asked again. */
let refused = false;

/**
 * Start the probe worker ahead of a drop (while files are dragged over the
 * element, or a file picker is open): its start — loading its scripts and
 * instantiating the wasm, 100–200 ms on a busy 2-core machine — then
 * overlaps the user's gesture instead of delaying the first reads.
 * @param {WebAssembly.Module | null | undefined} module
 */
export function warmProbeWorker(module) {
  getWorker(module);
}

/** The probe worker, started on first use (null: probe on this thread). @param {WebAssembly.Module | null | undefined} module */
function getWorker(module) {
  if (probeWorker) return probeWorker.failed ? null : probeWorker;
  const url = workerUrl();
  if (!module || !url || refused || typeof Worker !== 'function') return null;
  try {
    probeWorker = new ProbeWorker(url, module);
  } catch {
    refused = true;
    return null; // refused at once (a CSP): this thread probes
  }
  return probeWorker;
}

/** Probe many images, `parallel` at a time (a pool: a slow file holds up
 *  only its own slot), yielding to the event loop every 12 ms so the page
 *  stays responsive. Given the compiled wasm `module`, jobs with a `file`
 *  are probed in a Web Worker (reads and probe loops off the page's thread;
 *  this thread then makes one `probeQuiet` call per image with the chunks the
 *  worker read: each chunk crosses into the page's wasm once); jobs with
 *  only a reader (a host's), and every job when no worker can run, are
 *  probed here (`probeImage`: a `Probe` per image). `onProgress(done,
 *  total)`. Results in `jobs` order; an image the worker probed has
 *  `result: { done: true }` (its facts are in the session's forest).
 * @param {Prober & { probeQuiet(name: string, size: number, chunks: Chunk[]): any, orderAdded(perm: Uint32Array): void }} session
 * @param {ProbeJob[]} jobs
 * @param {(done: number, total: number) => void} [onProgress]
 * @param {{ parallel?: number, module?: WebAssembly.Module | null }} [options]
 * @returns {Promise<ProbeResult[]>}
 */
export async function probeMany(session, jobs, onProgress, { parallel = 64, module = null } = {}) {
  /** @type {ProbeResult[]} */
  const results = new Array(jobs.length);
  // The session adds each image when its probe ends, in any order: note
  // that order, then put the batch in `jobs` order (chains and bare disks
  // then come out as the images were given, whatever the reads took).
  /** @type {string[]} */
  const added = [];
  /** @type {Prober & { probeQuiet(name: string, size: number, chunks: Chunk[]): any }} */
  const noting = {
    probeQuiet(name, size, chunks) {
      const answer = session.probeQuiet(name, size, chunks);
      if (!answer.need) added.push(name);
      return answer;
    },
    newProbe: (size) => session.newProbe(size),
    addProbe(name, probe) {
      session.addProbe(name, probe);
      added.push(name);
    },
    addUnreadable(name, message) {
      session.addUnreadable(name, message);
      added.push(name);
    },
  };
  let done = 0;
  const progress = () => onProgress?.(++done, jobs.length);
  let lastYield = performance.now();
  /** Probe jobs `todo` (indices) on this thread, `parallel` at a time. @param {number[]} todo */
  const here = async (todo) => {
    let next = 0;
    const slot = async () => {
      while (next < todo.length) {
        const i = todo[next++];
        const j = jobs[i];
        results[i] = await probeImage(noting, j.name, j.size, j.reader, { span: j.span });
        progress();
        if (performance.now() - lastYield > 12) {
          await new Promise((ok) => setTimeout(ok, 0));
          lastYield = performance.now();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, todo.length) }, slot));
  };
  const worker = jobs.some((j) => j.file) ? getWorker(module) : null;
  /** @type {number[]} */
  const local = [];
  /** @type {number[]} */
  const remote = [];
  jobs.forEach((j, i) => (worker && j.file ? remote : local).push(i));
  /** @type {Promise<unknown>[]} */
  const finishing = [];
  /** The worker's answer for job i: one `probeQuiet` call with its chunks (a
   *  probe that still needs bytes goes on here). @param {number} i @param {WorkerResult} r */
  const take = (i, r) => {
    const j = jobs[i];
    const { size, bytesRead, reads, fileReads, fileBytes, chunks } = r;
    if (r.unreadable !== undefined) {
      noting.addUnreadable(j.name, r.unreadable);
      results[i] = { name: j.name, size, bytesRead, reads, fileReads, fileBytes, result: { error: r.unreadable }, chunks, unreadable: r.unreadable };
    } else {
      // `{ done: true }` once added: the facts are not written out (the forest has them).
      const answer = noting.probeQuiet(j.name, size, chunks);
      if (answer.need) {
        finishing.push(probeImage(noting, j.name, size, j.reader, { chunks, bytesRead, reads, fileReads, fileBytes, span: j.span }).then((x) => (results[i] = x)));
        return;
      }
      results[i] = { name: j.name, size, bytesRead, reads, fileReads, fileBytes, result: answer, chunks };
    }
    progress();
  };
  /** Files to the worker in groups (a group waits for its File handles),
   *  one task each: posting a File costs this thread a synchronous round
   *  trip to the browser for its size and date, 0.2–0.5 ms, several ms on
   *  a loaded machine; a group after one that took longer than GROUP_MS is
   *  made smaller in proportion, so that no task posts for long. What the
   *  worker could not probe is probed here. */
  const viaWorker = async () => {
    const w = /** @type {ProbeWorker} */ (worker);
    const GROUP = 64;
    const GROUP_MS = 40;
    let group = GROUP;
    /** @type {Promise<number[]>[]} */
    const sent = [];
    for (let at = 0; at < remote.length; ) {
      if (at) await nextTask();
      const ids = remote.slice(at, at + group);
      at += ids.length;
      const files = await Promise.allSettled(ids.map((i) => jobs[i].file));
      /** @type {number[]} */
      const ok = [];
      /** @type {File[]} */
      const okFiles = [];
      files.forEach((f, n) => {
        if (f.status === 'fulfilled' && f.value instanceof Blob) {
          ok.push(ids[n]);
          okFiles.push(f.value);
        } else local.push(ids[n]); // its reader says why it cannot be read
      });
      const t = performance.now();
      sent.push(w.probe(okFiles, (k, r) => take(ok[k], r)).then((left) => left.map((k) => ok[k])));
      const took = performance.now() - t;
      group = Math.max(8, Math.min(GROUP, Math.floor((ids.length * GROUP_MS) / Math.max(took, 1))));
    }
    const left = (await Promise.all(sent)).flat();
    await here(left);
  };
  await Promise.all([remote.length ? viaWorker() : null, here(local)]);
  // Files refused to the worker after `here(local)` started.
  const late = local.filter((i) => !results[i]);
  if (late.length) await here(late);
  await Promise.all(finishing);
  const at = new Map(added.map((name, k) => [name, k]));
  if (added.length === jobs.length && at.size === jobs.length) {
    session.orderAdded(Uint32Array.from(jobs, (j) => at.get(j.name) ?? 0));
  }
  return results;
}
