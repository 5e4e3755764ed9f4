//! The fence array (`dma_fence_array`): a fence that signals when all of its members have
//! signalled, or when the first one has (`signal_on_any`).
//!
//! # Protocol (both backends; the member storage and the final signal are the backend's)
//!
//! - `pending` starts at the member count (1 with `signal_on_any`).
//! - `enable_signaling` installs one callback per member. The callback, or the enable loop
//!   itself for a member found already signalled, *finishes* that member: records its error
//!   (the first one sticks: CAS from 0), hands the member to the backend (`Rcu` releases
//!   the array's reference, so a signalled array holds nothing), and decrements `pending`.
//! - All mode: the finisher that takes `pending` from 1 to 0 completes the array. Any mode:
//!   the first finisher's `swap(0)` sees 1 and completes it; later finishers see 0.
//!   So exactly one finisher completes the array, whatever the interleaving.
//! - Completing: from a callback, the backend signals the array (`Rcu`: at once, no lock is
//!   held; `Locked`: deferred to a worker, the kernel's irq_work); from the enable loop, the
//!   hook returns `false` and the core signals. The array's error (the first member error)
//!   is applied atomically with the signal.
//! - `signaled` polling: once enabled, `pending == 0` alone answers (the kernel's rule; one
//!   load, and never ahead of the callbacks that record the members' errors). Before
//!   enabling, it checks each member's flag, polling plain members' hooks but not descending
//!   into nested containers (that would recurse with depth), and records the error of every
//!   member it finds signalled: a nested container reports completion once it is enabled or
//!   signalled. The kernel allows `signaled` to say "not yet" when unsure.
//!
//! Nothing here recurses with nesting depth: enabling a nested member is queued by the
//! member's `add_callback`, and completion of a nested array is a signal from inside a
//! callback, which the work list runs after the current callback returns.
//!
//! # Orderings
//! - the error CAS and `pending`'s RMWs are `AcqRel`: the finisher that completes the array
//!   sees every earlier finisher's recorded error (release sequence on `pending`).

use std::fmt;

use crate::Rcu;
use crate::backend::Backend;
use crate::error::{Errno, FenceError};
use crate::fence::{Fence, Kind};
use crate::sync::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

/// A fence over a set of member fences (`dma_fence_array`).
///
/// ```
/// use rcu_fence::{FenceArray, Status, Timeline, context_alloc};
/// let tl = Timeline::new("gpu");
/// let (a, b) = (tl.fence(1), tl.fence(2));
/// let all = FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, false).unwrap();
/// all.enable_sw_signaling();
/// a.signal().unwrap();
/// assert!(!all.is_signaled());
/// b.signal().unwrap();
/// assert_eq!(all.status(), Status::Signaled);
/// assert_eq!(all.as_array().unwrap().num_fences(), 2);
/// ```
pub struct FenceArray<B: Backend = Rcu> {
    members: Box<[B::Member]>,
    signal_on_any: bool,
    pending: AtomicUsize,
    /// Set once `enable_signaling` has installed every member's callback: from then on
    /// `pending` alone answers `poll`.
    enabled: AtomicBool,
    /// The first member error, or 0.
    first_error: AtomicI32,
}

impl<B: Backend> FenceArray<B> {
    /// Builds an array fence over `fences` on `context` at `seqno`
    /// (`dma_fence_array_create`); `Err(Empty)` for no fences. Takes the references.
    ///
    /// On `Rcu` any fence may be a member, containers included, at any depth. On `Locked`
    /// a container member is still accepted but counted as a nesting warning, as the
    /// kernel's `WARN_ON` does.
    pub fn create(
        fences: Vec<Fence<B>>,
        context: u64,
        seqno: u64,
        signal_on_any: bool,
    ) -> Result<Fence<B>, FenceError> {
        if fences.is_empty() {
            return Err(FenceError::Empty);
        }
        B::check_nesting("array", &fences.iter().collect::<Vec<_>>());
        let pending = if signal_on_any { 1 } else { fences.len() };
        let array = FenceArray {
            members: fences.into_iter().map(|f| B::member_new(Some(f))).collect(),
            signal_on_any,
            pending: AtomicUsize::new(pending),
            enabled: AtomicBool::new(false),
            first_error: AtomicI32::new(0),
        };
        Ok(Fence::new_pending(
            context,
            seqno,
            false,
            Kind::Array(Box::new(array)),
        ))
    }

    /// How many members the array was built with.
    pub fn num_fences(&self) -> usize {
        self.members.len()
    }

    /// True if the array signals on the first member rather than on all.
    pub fn signal_on_any(&self) -> bool {
        self.signal_on_any
    }

    /// The members the array still holds, in index order, as new references. Lock-free on
    /// `Rcu`; there a member that has signalled after enabling is already released.
    pub fn fences(&self) -> impl Iterator<Item = Fence<B>> + '_ {
        self.members.iter().filter_map(B::member_get)
    }

    /// The member at `index`, if still held.
    pub fn fence(&self, index: usize) -> Option<Fence<B>> {
        self.members.get(index).and_then(B::member_get)
    }

    /// The first member error recorded so far.
    pub(crate) fn recorded_error(&self) -> Option<Errno> {
        // Acquire: pairs with the recording CAS.
        Errno::new(self.first_error.load(Ordering::Acquire))
    }

    /// Records a signalled member's error; the first one sticks.
    fn record_error(&self, member: &Fence<B>) {
        if let Some(e) = member.error() {
            // AcqRel: see the module's Orderings. Failure (an earlier error): keep it.
            let _ =
                self.first_error
                    .compare_exchange(0, e.get(), Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Finishes member `index` after it signalled; true if this completed the array.
    fn finish_member(&self, index: usize, member: &Fence<B>) -> bool {
        self.record_error(member);
        B::member_signaled(&self.members[index]);
        if self.signal_on_any {
            // AcqRel: one transition 1 → 0 completes the array.
            self.pending.swap(0, Ordering::AcqRel) == 1
        } else {
            // AcqRel: the last decrement sees every earlier finisher's error.
            self.pending.fetch_sub(1, Ordering::AcqRel) == 1
        }
    }

    /// The `enable_signaling` hook: one callback per member; `false` if already complete.
    pub(crate) fn enable(&self, fence: &Fence<B>) -> bool {
        for (index, slot) in self.members.iter().enumerate() {
            let Some(member) = B::member_get(slot) else {
                continue;
            };
            let array = fence.clone();
            let installed = member.add_callback(move |m| {
                crate::trace::member!(&array, m, index = index);
                let this = array
                    .as_array()
                    .expect("an array's callback holds the array");
                if this.finish_member(index, m) {
                    B::signal_container(array);
                }
            });
            crate::trace::member!(if installed.is_err(), fence, &member, index = index);
            if installed.is_err() && self.finish_member(index, &member) {
                return false;
            }
        }
        // Only now does every member carry a callback: from here `pending` alone answers
        // `poll`. (Until then, or if a member's hook panicked part-way, the poll walks the
        // members' flags.) Release: pairs with `poll`'s Acquire load.
        self.enabled.store(true, Ordering::Release);
        true
    }

    /// The `signaled` polling hook (see the module docs).
    pub(crate) fn poll(&self) -> bool {
        // Acquire: pairs with the finishers' AcqRel RMWs.
        if self.pending.load(Ordering::Acquire) == 0 {
            return true;
        }
        // Once enabled, the finishers decide (the kernel's rule): a member whose flag is set
        // but whose callback has not run yet is not counted, so the array never completes
        // ahead of its own protocol, and the poll costs one load.
        // Acquire: pairs with `enable`'s Release store.
        if self.enabled.load(Ordering::Acquire) {
            return false;
        }
        let done = |m: &Fence<B>| m.test_signaled_flag() || (!m.is_container() && m.is_signaled());
        let mut remaining = if self.signal_on_any {
            1
        } else {
            self.members.len()
        };
        for slot in self.members.iter() {
            // A released member has signalled.
            let finished = match B::member_get(slot) {
                // A member's flag is set before its callbacks run, so the array's own
                // callback may not have recorded its error yet: record it here, or a
                // "true" answer would signal the array without it.
                Some(m) => {
                    let finished = done(&m);
                    if finished {
                        self.record_error(&m);
                    }
                    finished
                }
                None => true,
            };
            if finished {
                remaining -= 1;
                if remaining == 0 {
                    return true;
                }
            }
        }
        false
    }
}

impl<B: Backend> fmt::Debug for FenceArray<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FenceArray")
            .field("num_fences", &self.members.len())
            .field("signal_on_any", &self.signal_on_any)
            // Relaxed: a diagnostic snapshot.
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish()
    }
}
