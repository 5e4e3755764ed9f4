//! Fence contexts and timelines.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::backend::state::Birth;
use crate::backend::{Backend, Rcu};
use crate::driver::DriverFence;
use crate::fence::{Fence, FenceOps, TimelineOps, context_alloc};

/// One fence context with a name: the place fences of one ordered stream come from.
///
/// # Signal in order
///
/// A timeline's fences must signal in seqno order: fence `n` signals only after every
/// earlier fence of the timeline has (the kernel's rule for a fence context). The
/// containers rely on it: [`merge`](crate::merge) keeps only the latest pending fence of
/// each timeline, and a [`FenceChain`](crate::FenceChain) point or
/// [`Syncobj`](crate::Syncobj) point stands for everything before it; a timeline that
/// signals `n` before `n - 1` makes them complete early. (Errors may come in any order: a
/// fence may fail with any code.)
///
/// Debug builds report an out-of-order signal, once per timeline: a `tracing` warning
/// (target `rcu_fence`) with the `tracing` feature, else a line on stderr. The check
/// covers the fences made by [`Timeline::fence`] and [`Timeline::driver_fence`] (a driver's
/// own [`FenceOps`], given to [`Timeline::fence_with_ops`], owns its fences' order), is
/// made when a fence is signalled, before its callbacks run, and compiles to nothing in
/// release builds. Signals of one timeline racing on several threads have no order to
/// check and may be reported.
///
/// ```
/// use rcu_fence::Timeline;
/// let tl = Timeline::new("gpu");
/// let (a, b) = (tl.fence(1), tl.fence(2));
/// assert_eq!(a.context(), tl.context());
/// assert!(b.is_later(&a));
/// ```
pub struct Timeline<B: Backend = Rcu> {
    context: u64,
    seqno64: bool,
    ops: Arc<dyn FenceOps<B>>,
    name: Arc<str>,
    _backend: PhantomData<B>,
}

impl Timeline<Rcu> {
    /// A timeline on a fresh context, on the default [`Rcu`] backend.
    ///
    /// For another backend, name it: `Timeline::<Locked>::new("gpu")` (with
    /// [`TimelineNew`], in [`rcu_fence::prelude`](crate::prelude)), or
    /// [`Timeline::new_in`].
    pub fn new(name: &str) -> Self {
        Self::new_in(name, Rcu)
    }
}

/// `Timeline::<B>::new(name)` for every backend `B`, so that generic code and code that
/// picks its backend with one type alias read as the default case does. (The inherent
/// [`Timeline::new`] on `Timeline<Rcu>` takes precedence, which keeps an unannotated
/// `Timeline::new("gpu")` meaning `Rcu`.) Import it with [`rcu_fence::prelude`](crate::prelude).
///
/// ```
/// use rcu_fence::prelude::*;
///
/// type Bk = Locked; // the one place that picks the backend
/// let tl = Timeline::<Bk>::new("gpu");
/// let obj = Syncobj::<Bk>::new();
/// obj.add_point(tl.fence(1), 1);
///
/// fn submit<B: Backend>(name: &str) -> Fence<B> {
///     Timeline::<B>::new(name).fence(1)
/// }
/// assert_eq!(submit::<Locked>("blit").timeline_name(), "blit");
/// ```
pub trait TimelineNew: Sized {
    /// A timeline on a fresh context (as [`Timeline::new_in`] with `B::default()`).
    fn new(name: &str) -> Self;
}

impl<B: Backend> TimelineNew for Timeline<B> {
    fn new(name: &str) -> Self {
        Self::new_in(name, B::default())
    }
}

impl<B: Backend> Timeline<B> {
    /// A timeline on a fresh context, on the backend `B`.
    ///
    /// The backend is a value of its marker type: `Locked`, or `B::default()` where only
    /// the type is at hand (a type alias of a unit struct is not a value:
    /// `type Bk = Locked; Timeline::new_in("gpu", Bk::default())`).
    pub fn new_in(name: &str, backend: B) -> Self {
        let _ = backend;
        Timeline {
            context: context_alloc(1),
            seqno64: false,
            ops: Arc::new(TimelineOps::new(name)),
            name: name.into(),
            _backend: PhantomData,
        }
    }

    /// Orders this timeline's fences by plain 64-bit seqno comparison (`dma_fence_init64`)
    /// instead of the 32-bit wrap-aware one.
    pub fn seqno64(mut self) -> Self {
        self.seqno64 = true;
        self
    }

    /// The context id.
    pub fn context(&self) -> u64 {
        self.context
    }

    /// The timeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True if fences of this timeline compare seqnos in 64 bits.
    pub fn is_seqno64(&self) -> bool {
        self.seqno64
    }

    /// A new pending fence at `seqno` on this timeline (`dma_fence_init`).
    pub fn fence(&self, seqno: u64) -> Fence<B> {
        self.new_fence(seqno, self.ops.clone(), true)
    }

    /// A new pending fence whose hooks are the driver's `ops`.
    pub fn fence_with_ops(&self, seqno: u64, ops: Arc<dyn FenceOps<B>>) -> Fence<B> {
        self.new_fence(seqno, ops, false)
    }

    fn new_fence(&self, seqno: u64, ops: Arc<dyn FenceOps<B>>, inert: bool) -> Fence<B> {
        // The timeline's own ops poll nothing; a driver's say.
        let polls = !inert && ops.polls();
        Fence::new(
            self.context,
            seqno,
            ops,
            Birth {
                seqno64: self.seqno64,
                container: false,
                inert,
                polls,
                signaled_at: None,
            },
        )
    }

    /// A new fence with a unique producer handle; see [`DriverFence`].
    pub fn driver_fence(&self, seqno: u64) -> DriverFence<B> {
        DriverFence::new(self.fence(seqno))
    }
}

impl<B: Backend> Clone for Timeline<B> {
    fn clone(&self) -> Self {
        Timeline {
            context: self.context,
            seqno64: self.seqno64,
            ops: self.ops.clone(),
            name: self.name.clone(),
            _backend: PhantomData,
        }
    }
}

impl<B: Backend> fmt::Debug for Timeline<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeline")
            .field("name", &self.name())
            .field("context", &self.context)
            .field("seqno64", &self.seqno64)
            .field("backend", &B::NAME)
            .finish()
    }
}
