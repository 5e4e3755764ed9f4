//! Unit tests and loom models that need the crate's internals.

#[cfg(loom)]
mod loom_callbacks;
#[cfg(loom)]
mod loom_containers;
