//! Read-copy-update slots with pluggable reclaimers.
//!
//! Readers enter a read-side critical section with [`pin`] and read
//! [`Slot`]s through the resulting [`Guard`]; writers [`replace`](Slot::replace)
//! a slot's value and the old one is dropped once no reader can still see it.
//! [`defer`] (`call_rcu`) and [`synchronize`] (`synchronize_rcu`) complete the
//! kernel-style vocabulary.
//!
//! When values are reclaimed is up to a [`Reclaimer`]:
//!
//! - [`Epoch`] (the default): epoch-based reclamation on crossbeam-epoch, with a
//!   collector owned by this crate.
//! - [`Hazard`]: hazard pointers on haphazard; a stalled reader holds back only
//!   the value it protects.
//! - [`Reference`]: readers count themselves in and out of a shared
//!   two-phase counter (the kernel's SRCU scheme) and never block; deferred
//!   work runs once a collector has seen every earlier reader leave. Slow but
//!   obviously correct, the yardstick for the other two and the one the loom
//!   models check.
//!
//! ```
//! use std::sync::Arc;
//! use rcu::Slot;
//!
//! let config: Slot<Arc<String>> = Slot::new(Some(Arc::new("v1".into())));
//!
//! let mut guard = rcu::pin();
//! let seen = config.load(&mut guard).unwrap();
//! config.replace(Some(Arc::new("v2".into()))); // "v1" stays alive for `seen`
//! assert_eq!(seen.as_str(), "v1");
//! drop(guard);
//!
//! rcu::synchronize::<rcu::Epoch>(); // "v1" has been dropped
//! assert_eq!(config.load_clone().unwrap().as_str(), "v2");
//! ```
//!
//! Values are stored through the [`Pointer`] trait (one raw pointer per value),
//! implemented for `Box` and `Arc`. All synchronisation primitives come from
//! [`sync`], which switches to loom under `--cfg loom`; there only
//! [`Reference`] is available.

#![deny(unsafe_op_in_unsafe_fn, missing_docs)]

pub mod sync;

mod guard;
mod pointer;
mod rcu;
mod reclaimer;
mod slot;
mod slots;

#[cfg(test)]
mod tests;

pub use guard::{Guard, pin};
pub use pointer::Pointer;
pub use rcu::{defer, flush, pending, retire, synchronize};
pub use reclaimer::{DefaultReclaimer, Reclaimer, Reference, WholeSection};
#[cfg(not(loom))]
pub use reclaimer::{Epoch, Hazard};
pub use slot::{Shared, Slot, SlotMut};
pub use slots::Slots;
