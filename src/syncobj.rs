//! The sync object (`drm_syncobj`): a replaceable fence slot, and a timeline of points.
//!
//! Readers take a snapshot of the current fence without a lock (arc-swap; under loom a
//! mutex stand-in, since arc-swap is invisible to loom). Writers are serialised by a small
//! lock so that `add_point`'s read-modify-write never loses a point; readers never take it.

use std::fmt;

use crate::backend::{Backend, Rcu};
use crate::chain::{FenceChain, chain_find_seqno};
use crate::error::FenceError;
use crate::fence::Fence;
use crate::sync::Mutex;

/// The slot: a whole-fence snapshot read often, replaced rarely.
struct FenceSlot<B: Backend> {
    #[cfg(not(loom))]
    current: arc_swap::ArcSwapOption<Fence<B>>,
    #[cfg(loom)]
    current: Mutex<Option<std::sync::Arc<Fence<B>>>>,
}

impl<B: Backend> FenceSlot<B> {
    fn new() -> Self {
        #[cfg(not(loom))]
        return FenceSlot {
            current: arc_swap::ArcSwapOption::empty(),
        };
        #[cfg(loom)]
        return FenceSlot {
            current: Mutex::new(None),
        };
    }

    fn load(&self) -> Option<Fence<B>> {
        #[cfg(not(loom))]
        return self.current.load().as_deref().cloned();
        #[cfg(loom)]
        return self.current.lock().as_deref().cloned();
    }

    fn swap(&self, fence: Option<Fence<B>>) -> Option<Fence<B>> {
        let new = fence.map(std::sync::Arc::new);
        #[cfg(not(loom))]
        let old = self.current.swap(new);
        #[cfg(loom)]
        let old = std::mem::replace(&mut *self.current.lock(), new);
        old.map(|a| std::sync::Arc::try_unwrap(a).unwrap_or_else(|shared| (*shared).clone()))
    }
}

/// A sync object (`drm_syncobj`): a slot holding the latest fence of some work, replaced as
/// new work is submitted, and a timeline of points when used with [`Syncobj::add_point`].
///
/// ```
/// use rcu_fence::{Syncobj, Timeline};
/// let tl = Timeline::new("ring0");
/// let obj = Syncobj::new();
/// let (a, b) = (tl.fence(1), tl.fence(2));
/// obj.add_point(a.clone(), 1);
/// obj.add_point(b.clone(), 2);
/// a.signal().unwrap();
/// assert!(obj.find_fence(1).unwrap().is_signaled());
/// assert!(!obj.find_fence(2).unwrap().is_signaled());
/// assert!(obj.find_fence(3).is_err()); // not submitted yet
/// ```
pub struct Syncobj<B: Backend = Rcu> {
    slot: FenceSlot<B>,
    writers: Mutex<()>,
}

impl Syncobj<Rcu> {
    /// An empty sync object on the default backend.
    ///
    /// For another backend: `Syncobj::<Locked>::new()` (with [`SyncobjNew`], in
    /// [`rcu_fence::prelude`](crate::prelude)), `Syncobj::<Locked>::default()`, or
    /// [`Syncobj::new_in`].
    pub fn new() -> Self {
        Self::new_in(Rcu)
    }
}

/// `Syncobj::<B>::new()` for every backend `B` (the inherent [`Syncobj::new`] on
/// `Syncobj<Rcu>` takes precedence, so an unannotated `Syncobj::new()` stays `Rcu`); see
/// [`TimelineNew`](crate::TimelineNew). Import it with [`rcu_fence::prelude`](crate::prelude).
///
/// ```
/// use rcu_fence::prelude::*;
/// type Bk = Locked;
/// let obj = Syncobj::<Bk>::new();
/// assert!(obj.fence().is_none());
/// ```
pub trait SyncobjNew: Sized {
    /// An empty sync object (as [`Syncobj::new_in`] with `B::default()`).
    fn new() -> Self;
}

impl<B: Backend> SyncobjNew for Syncobj<B> {
    fn new() -> Self {
        Self::new_in(B::default())
    }
}

/// An empty sync object on any backend. (`Syncobj::default()` needs its backend named
/// where nothing else fixes it: `Syncobj::<Locked>::default()`, or a typed binding.)
impl<B: Backend> Default for Syncobj<B> {
    fn default() -> Self {
        Self::new_in(B::default())
    }
}

impl<B: Backend> Syncobj<B> {
    /// An empty sync object on the backend `B` (a value of its marker type; `B::default()`
    /// where only the type is at hand).
    pub fn new_in(backend: B) -> Self {
        let _ = backend;
        Syncobj {
            slot: FenceSlot::new(),
            writers: Mutex::new(()),
        }
    }

    /// The current fence (for a timeline, the newest point's chain link).
    pub fn fence(&self) -> Option<Fence<B>> {
        self.slot.load()
    }

    /// Replaces the fence and returns the old one (`drm_syncobj_replace_fence`).
    pub fn replace_fence(&self, fence: Option<Fence<B>>) -> Option<Fence<B>> {
        let _writer = self.writers.lock();
        self.slot.swap(fence)
    }

    /// Adds timeline point `point` completed by `fence` (`drm_syncobj_add_point`): chains a
    /// new link after the current one.
    pub fn add_point(&self, fence: Fence<B>, point: u64) {
        let _writer = self.writers.lock();
        let head = FenceChain::create(self.slot.load(), fence, point);
        drop(self.slot.swap(Some(head)));
    }

    /// The fence that completes every point up to `point` (`drm_syncobj_find_fence`): the
    /// current fence for point 0, a signalled stub if all those points have signalled.
    /// `Err(InvalidSeqno)` if the point has not been submitted yet (or the object is empty).
    pub fn find_fence(&self, point: u64) -> Result<Fence<B>, FenceError> {
        let head = self.slot.load().ok_or(FenceError::InvalidSeqno)?;
        if point == 0 {
            return Ok(head);
        }
        match chain_find_seqno(&head, point)? {
            Some(fence) => Ok(fence),
            None => Ok(crate::stub()),
        }
    }
}

impl<B: Backend> fmt::Debug for Syncobj<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Syncobj")
            .field("fence", &self.fence())
            .finish()
    }
}
