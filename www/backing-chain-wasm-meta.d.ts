// Types of the metadata module (`pkg/backing_chain_meta.js`, the wasm-bindgen
// glue of the second wasm module the element loads on first use: issue 17's
// metadata walks, split out of the core in issue 18). Its values are typed in
// backing-chain-wasm.d.ts. A test checks that every export named here exists.
// A wasm built from the crate with no feature exports these from the core too.

import type { Chunk, MetaAnswer, MetaChainResult, MetaPlan } from './backing-chain-wasm';

/** One image's metadata walk: header first, then its tables. A bad header or table throws. */
export class MetaWalk {
  constructor(fileLen: number, options?: { check?: boolean });
  /** The bytes of the ranges the last answer asked for (the walk keeps the earlier ones). */
  step(chunks: Chunk[]): MetaAnswer;
  plan(): MetaPlan | null;
  free(): void;
}

/** The layers of one chain, top first: map, summary, measure, commit estimates. */
export class MetaChain {
  constructor();
  push(walk: MetaWalk): void;
  result(): MetaChainResult;
  free(): void;
}

export function initSync(module: { module: BufferSource | WebAssembly.Module } | BufferSource | WebAssembly.Module): unknown;
export default function init(module?: { module_or_path?: RequestInfo | URL | BufferSource | WebAssembly.Module } | RequestInfo | URL | BufferSource | WebAssembly.Module): Promise<unknown>;
