//! In-crate tests: the behaviour suites run once per reclaimer, and the loom
//! models (built only under `--cfg loom`).

#[cfg(not(loom))]
mod forget;
#[cfg(loom)]
mod loom_batches;
#[cfg(loom)]
mod loom_defer;
#[cfg(loom)]
mod loom_reference;
#[cfg(loom)]
mod loom_slot;
#[cfg(loom)]
mod loom_support;
#[cfg(not(loom))]
mod panics;
#[cfg(not(loom))]
mod suite;
#[cfg(not(loom))]
mod support;
