// @ts-check
// Reading images the sans-I/O way: the core says which byte ranges it needs,
// we read exactly those (Blob.slice for files, or a host-supplied reader) and
// call it again. Never the whole file.

/** Upper bound on probe rounds on this side too (the core bounds its own). */
const MAX_ROUNDS = 64;
/** Upper bound on one read (the core caps its requests lower). */
const MAX_READ = 16 * 1024 * 1024;

/**
 * @typedef {(offset: number, length: number) => Promise<Uint8Array>} Reader
 * @typedef {{ probe(name: string, size: number, chunks: Array<[number, Uint8Array, number]>): any, addUnreadable(name: string, message: string): void }} Prober
 * @typedef {{ file: File | Promise<File>, path: string, from?: string }} Entry
 */

/** A reader over a Blob/File (or a promise of one): (offset, length) → Promise<Uint8Array>. @param {Blob | Promise<Blob>} file @returns {Reader} */
export function blobReader(file) {
  return async (offset, length) => {
    const blob = await file;
    const end = Math.min(blob.size, offset + length);
    if (offset >= end) return new Uint8Array(0);
    return new Uint8Array(await blob.slice(offset, end).arrayBuffer());
  };
}

/**
 * Run the probe loop for one image against a wasm `Session`.
 * `size` is the file length or -1 when unknown (or a promise of it). Resolves
 * to `{ name, size, bytesRead, reads, result }` where `result` is the core's
 * last answer (`{info}` or `{error}`); a reader failure adds the image as
 * unreadable and resolves with `{error}`.
 * @param {Prober} session @param {string} name @param {number | Promise<number> | undefined} size @param {Reader} reader
 */
export async function probeImage(session, name, size, reader) {
  /** @type {Array<[number, Uint8Array, number]>} */
  const chunks = [];
  let bytesRead = 0;
  let reads = 0;
  try {
    size = (await size) ?? -1;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      /** @type {{ need?: Array<{ offset: number, len: number }> }} */
      const answer = session.probe(name, size, chunks);
      if (!answer.need) return { name, size, bytesRead, reads, result: answer };
      for (const { offset, len } of answer.need) {
        const want = Math.min(len, MAX_READ);
        const got = await reader(offset, want);
        if (!(got instanceof Uint8Array)) throw new TypeError('the reader must resolve to a Uint8Array');
        const bytes = got.length > want ? got.subarray(0, want) : got;
        bytesRead += bytes.length;
        reads += 1;
        chunks.push([offset, bytes, len]);
      }
    }
    throw new Error(`the probe asked for more than ${MAX_ROUNDS} rounds of reads`);
  } catch (e) {
    const x = /** @type {any} */ (e);
    const message = `cannot read: ${x && x.message ? x.message : String(x)}`;
    session.addUnreadable(name, message);
    return { name, size: typeof size === 'number' ? size : -1, bytesRead, reads, result: { error: message } };
  }
}

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
  if (files.length && withHandles.every((i) => i.getAsFileSystemHandle)) {
    const plain = files.map((i) => i.getAsFile());
    return Promise.all(withHandles.map((i, n) => i.getAsFileSystemHandle().catch(() => plain[n]))).then(walkHandles).then(rebase);
  }
  for (const item of items) {
    if (item.kind !== 'file') continue;
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

/** Probe many images, `parallel` at a time (a pool: a slow file holds up
 *  only its own slot), yielding to the event loop every 12 ms so the page
 *  stays responsive. `onProgress(done, total)`. Results in `jobs` order.
 * @param {Prober & { orderAdded(perm: Uint32Array): void }} session
 * @param {Array<{ name: string, size?: number | Promise<number>, reader: Reader }>} jobs
 * @param {(done: number, total: number) => void} [onProgress]
 */
export async function probeMany(session, jobs, onProgress, { parallel = 64 } = {}) {
  /** @type {Array<{ name: string, size: number, bytesRead: number, reads: number, result: unknown }>} */
  const results = new Array(jobs.length);
  // The session adds each image when its probe ends, in any order: note
  // that order, then put the batch in `jobs` order (chains and bare disks
  // then come out as the images were given, whatever the reads took).
  /** @type {string[]} */
  const added = [];
  /** @type {Prober} */
  const noting = {
    probe(name, size, chunks) {
      const answer = session.probe(name, size, chunks);
      if (!answer.need) added.push(name);
      return answer;
    },
    addUnreadable(name, message) {
      session.addUnreadable(name, message);
      added.push(name);
    },
  };
  let next = 0;
  let done = 0;
  let lastYield = performance.now();
  const slot = async () => {
    while (next < jobs.length) {
      const i = next++;
      const j = jobs[i];
      results[i] = await probeImage(noting, j.name, j.size, j.reader);
      onProgress?.(++done, jobs.length);
      if (performance.now() - lastYield > 12) {
        await new Promise((ok) => setTimeout(ok, 0));
        lastYield = performance.now();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, jobs.length) }, slot));
  const at = new Map(added.map((name, k) => [name, k]));
  if (added.length === jobs.length && at.size === jobs.length) {
    session.orderAdded(Uint32Array.from(jobs, (j) => at.get(j.name) ?? 0));
  }
  return results;
}
