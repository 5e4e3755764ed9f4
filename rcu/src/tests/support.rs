//! Helpers shared by the in-crate test suites.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

const ALIVE: u64 = 0x5eed_f00d_cafe_d00d;

/// A value that counts its drops and can tell whether it is still alive.
#[derive(Debug)]
pub(crate) struct Counted {
    id: usize,
    alive: u64,
    drops: Arc<AtomicUsize>,
}

impl Counted {
    pub(crate) fn new(id: usize, drops: &Arc<AtomicUsize>) -> Box<Self> {
        Box::new(Self {
            id,
            alive: ALIVE,
            drops: Arc::clone(drops),
        })
    }

    /// The value's id, after checking that it has not been dropped.
    pub(crate) fn check(&self) -> usize {
        assert_eq!(
            self.alive, ALIVE,
            "value {} read after it was dropped",
            self.id
        );
        self.id
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        assert_eq!(self.alive, ALIVE, "value {} dropped twice", self.id);
        self.alive = 0;
        self.drops.fetch_add(1, SeqCst);
    }
}

/// A fresh drop counter.
pub(crate) fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}
