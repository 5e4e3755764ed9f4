//! In-crate tests: the behaviour suite run once per reclaimer, and the loom
//! models (built only under `--cfg loom`).

#[cfg(loom)]
mod loom_defer;
#[cfg(loom)]
mod loom_slot;
#[cfg(not(loom))]
mod suite;
