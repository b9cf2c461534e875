//! backing-chain: read disk image headers, build libvirt backing chains, and
//! write `<backingStore>` XML — nested (libvirt's form) or flat.
//!
//! The core is pure: no I/O, no clock, no web types. Adapters (the wasm
//! facade in [`wasm`], the CLI in `src/bin/backing-chain.rs`) read bytes and
//! call in. See [`image`] for the sans-I/O probe contract.

pub mod chain;
pub mod diag;
pub mod image;
pub mod limits;
pub mod meta;
pub mod source;
pub mod xml;

#[cfg(target_arch = "wasm32")]
pub mod wasm;
