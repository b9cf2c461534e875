// Types of <backing-chain-editor> (backing-chain-editor.js) and of the
// values it hands out: the core's forest, diagnostics, edit operations.
// Checked against the JS with `tsc --noEmit` (tsconfig.json); the wasm API
// itself is in backing-chain-wasm.d.ts.

import type { Forest, Diagnostic, EditOp, AuditReport, MetaLayer, MetaChainResult, MetaCheck } from './backing-chain-wasm';

export type { Forest, Image, Link, Chain, Diagnostic, Severity, EditOp, LayerSpec, HostSpec, SeclabelSpec, AuditReport } from './backing-chain-wasm';

/** Why the wasm could not load (`kind` is also set as `data-wasm` on the element). */
export type WasmLoadErrorKind = 'file' | 'network' | 'http' | 'mime' | 'csp' | 'compile' | 'unknown' | 'internal';

export class WasmLoadError extends Error {
  constructor(kind: WasmLoadErrorKind, message: string, detail?: string);
  kind: WasmLoadErrorKind;
  detail?: string;
}

/** What a call into a trapped wasm instance throws (a Rust panic): its message. */
export class CorePanic extends Error {
  constructor(message: string);
}

/** Load the wasm once for all elements (the elements call it themselves). */
export function loadWasm(): Promise<void>;

/**
 * Define the element (once; importing the module already defines
 * `backing-chain-editor` unless something did). `wasmUrl` locates
 * backing_chain_bg.wasm for hosts that bundle the module; `metaWasmUrl`
 * the second module, backing_chain_meta_bg.wasm (the chain edits of `edit()`
 * and the chains table, `audit()`, and the metadata walks behind
 * `allocation()`, `check()`, `chainMap()` and the details' allocation view:
 * fetched only when the user edits, audits or walks, and started early when
 * they open an edit form or a row's menu; a page that only shows data never
 * fetches it; by default beside `wasmUrl`, else in pkg/ beside the module).
 * Call before the first
 * element is connected.
 */
export function register(options?: { wasmUrl?: string | URL; metaWasmUrl?: string | URL; name?: string }): typeof BackingChainEditor;

/** The event names (all bubbling and composed). */
export const EVENTS: {
  readonly change: 'backing-chain-editor-change';
  readonly diagnostics: 'backing-chain-editor-diagnostics';
  readonly edit: 'backing-chain-editor-edit';
  readonly progress: 'backing-chain-editor-progress';
};

/** `backing-chain-editor-progress`: bytes of `image`'s metadata read so far (`done`), of the bytes its walk will read (`total`; 0 while the header is probed, an upper bound until the tables that point to the rest are read), of a file of `size` bytes. */
export type ProgressEvent = CustomEvent<{ image: string; done: number; total: number; size: number }>;

/** Options of `allocation()` / `chainMap()`: `check` also runs qemu-img check's walk; `signal` cancels (the promise rejects with its reason). */
export interface MetaOptions {
  check?: boolean;
  signal?: AbortSignal;
}

/** `chainMap()`: the chain's map, summary and estimates, and each layer's walk (top first). */
export interface ChainMapResult extends MetaChainResult {
  layers: Array<{ image: string; layer: MetaLayer; bytesRead: number; reads: number; size: number }>;
}

/** `backing-chain-editor-change`: the resulting XML changed. */
export type ChangeEvent = CustomEvent<{ xml: string }>;
/** `backing-chain-editor-diagnostics`: after every update, every diagnostic once (errors first). */
export type DiagnosticsEvent = CustomEvent<{ diagnostics: Array<Diagnostic & { image: string | null }> }>;
/** `backing-chain-editor-edit` (cancelable): the user is about to edit a chain in the table; `preventDefault()` vetoes it. */
export type EditEvent = CustomEvent<{ op: EditOp }>;

/** A host's reader: `length` bytes at `offset` (fewer at the end of the file). */
export type Reader = (offset: number, length: number) => Promise<Uint8Array>;

export class BackingChainEditor extends HTMLElement {
  static readonly observedAttributes: string[];
  /** Resolves with the element once the wasm is loaded; rejects with a WasmLoadError. */
  readonly ready: Promise<BackingChainEditor>;
  /** Attribute `domain-xml`. */
  domainXml: string;
  /** Attribute `layout` (set from script, anything but `flat` is `nested`). */
  layout: 'nested' | 'flat';
  /** Attribute `mode`: `validate` compares each disk's chain with the images (set from script, anything else is `populate`). */
  mode: 'populate' | 'validate';
  /** Attribute `readonly`: no drop zone, XML and base directory not editable (addImage still works). */
  readonly: boolean;
  /** Attribute `untrusted`: the images come from elsewhere; suspect backing names are flagged, never in missingBackings(). */
  untrusted: boolean;
  /** Attribute `base-dir`. */
  baseDir: string;
  /** The core's forest (images, links, chains, overlays, diagnostics); null before the wasm is loaded. */
  readonly forest: Forest | null;

  addFiles(files: FileList | File[]): Promise<void>;
  /** `span`: the ranges of one probe round within this many bytes are asked of `reader` in one call (default 0: each range as the core asks). */
  addImage(name: string, reader: Reader, options?: { size?: number; span?: number }): Promise<void>;
  addQemuImgJson(text: string): Promise<string[]>;
  missingBackings(): string[];
  /** The image-store audit of the images added and the domain XML (plus `domains`): roles, users, delete/commit verdicts, fix script, CSV. It runs in the on-demand module (loaded by the first call; a `WasmLoadError` rejects when it cannot be loaded). */
  audit(domains?: Array<{ label: string; text: string }>, options?: { 'deep-chain'?: number }): Promise<{ report: AuditReport; csv: string; script: string }>;
  /** One image's allocation (and `qemu-img check` figures with `check`) from its metadata, read through the reader it was added with. The first call loads the metadata module (`register({ metaWasmUrl })`); when it cannot be loaded the promise rejects with a `WasmLoadError` (the rest of the element keeps working), after a panic in it with a `CorePanic` (the next call gets a fresh instance). */
  allocation(image: string, options?: MetaOptions): Promise<MetaLayer>;
  /** `qemu-img check --output=json`'s figures for one image (its metadata walk with `check`); rejects for a format that is not checked. */
  check(image: string, options?: { signal?: AbortSignal }): Promise<MetaCheck>;
  /** The chain from `top` down: `qemu-img map` entries, who provides what, `qemu-img measure -O qcow2` of it flattened, commit bytes per layer. */
  chainMap(top: string, options?: MetaOptions): Promise<ChainMapResult>;
  /** Focus the tree's filter box ("/" inside the element does it); false when there is no tree yet. */
  focusFilter(): boolean;
  /**
   * Choose the backing image of `image` among the known images (`null`: as its header says). A chain the
   * domain XML states that goes through `image` and agreed with the images down to it is written again from
   * the images, in the same undo step. Resolves once applied (when such a chain follows, after the
   * on-demand module, which writes it, is loaded: a `WasmLoadError` rejects and nothing changes).
   */
  setBacking(image: string, backing: string | null): Promise<void>;
  /**
   * Edit a disk's chain in the domain XML. Resolves with the new domain XML (the edits are in the on-demand
   * module: it is loaded first when it is not yet; a `WasmLoadError` rejects); a refused edit rejects and
   * changes nothing. When the edit makes one known image back another, that is also a backing choice (as
   * `setBacking`), in the same undo step.
   */
  edit(op: EditOp): Promise<string>;
  replaceWithImages(): boolean;
  undo(): Promise<boolean>;
  redo(): Promise<boolean>;
  getXml(options?: { layout?: 'nested' | 'flat' }): string;
  removeImage(name: string): boolean;
  clear(): void;

  addEventListener<K extends keyof BackingChainEditorEventMap>(type: K, listener: (this: BackingChainEditor, ev: BackingChainEditorEventMap[K]) => unknown, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof BackingChainEditorEventMap>(type: K, listener: (this: BackingChainEditor, ev: BackingChainEditorEventMap[K]) => unknown, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | EventListenerOptions): void;
}

export interface BackingChainEditorEventMap extends HTMLElementEventMap {
  'backing-chain-editor-change': ChangeEvent;
  'backing-chain-editor-diagnostics': DiagnosticsEvent;
  'backing-chain-editor-edit': EditEvent;
  'backing-chain-editor-progress': ProgressEvent;
  /** @deprecated use `backing-chain-editor-change` (`detail.xml`) */
  change: CustomEvent<string>;
  /** @deprecated use `backing-chain-editor-diagnostics` (`detail.diagnostics`) */
  diagnostics: CustomEvent<Array<Diagnostic & { image: string | null }>>;
}

declare global {
  interface HTMLElementTagNameMap {
    'backing-chain-editor': BackingChainEditor;
  }
}
