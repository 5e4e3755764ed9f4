//! Unit tests and loom models that need the crate's internals.

#[cfg(loom)]
mod loom_callbacks;
#[cfg(loom)]
mod loom_chain;
#[cfg(loom)]
mod loom_containers;
#[cfg(loom)]
mod loom_future;
#[cfg(loom)]
mod loom_remove;
#[cfg(loom)]
mod loom_support;
#[cfg(loom)]
mod loom_work;
