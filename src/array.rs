//! The fence array (`dma_fence_array`): a fence that signals when all of its members have
//! signalled, or when the first one has (`signal_on_any`).
//!
//! An array is a fence whose ops are the array's ([`FenceOps`] implemented by a private
//! wrapper), as in the kernel; [`Fence::as_array`] recognises it by type.
//!
//! # Layout
//! One block of entries, one per member, as the kernel keeps `fences[]` and `callbacks[]`:
//! the member (the scheme's hold on it), the array's callback on it (an intrusive node), and
//! the array reference that callback holds while installed. Creating and enabling an array
//! of any size allocates three blocks: the fence, the array, the entries.
//!
//! # Protocol (every backend; the member hold and the final signal are the scheme's)
//!
//! - `pending` starts at the member count (1 with `signal_on_any`).
//! - `enable_signaling` installs each entry's callback on its member. The callback, or the
//!   enable loop itself for a member found already signalled, *finishes* that member: records
//!   its error (the first one sticks), hands the member to the scheme (`Rcu` releases it, so a
//!   signalled array holds nothing), and decrements `pending`.
//! - All mode: the finisher that takes `pending` from 1 to 0 completes the array. Any mode:
//!   the first finisher's `swap(0)` sees 1 and completes it; later finishers see 0. So exactly
//!   one finisher completes the array, whatever the interleaving.
//! - Errors: the first member error is recorded on the array's own fence while it is pending
//!   (a CAS that keeps an error already there; the kernel's array sets it on its fence as
//!   each member fails), so whoever signals the array signals it with that error.
//! - Completing: from a callback, the scheme signals the array (`Rcu`: at once, no lock is
//!   held; `Locked`: by irq_work, as the kernel); from the enable loop, the hook returns
//!   `false` and the core signals.
//! - `signaled` polling: once enabled, `pending == 0` alone answers (the kernel's rule; one
//!   load, and never ahead of the callbacks that record the members' errors). Before enabling,
//!   it checks each member's flag, polling plain members' hooks but not descending into
//!   nested containers (that would recurse with depth), and records the error of every member
//!   it finds signalled; a nested container reports completion once it is enabled or
//!   signalled. The kernel allows `signaled` to say "not yet" when unsure.
//!
//! Nothing here recurses with nesting depth: on `Rcu`, enabling a nested member is queued by
//! the member's `add_callback`, and completion of a nested array is a signal from inside a
//! callback, which the work list runs after the current callback returns.
//!
//! # Orderings
//! - the error CAS and `pending`'s RMWs are `AcqRel`: the finisher that completes the array
//!   sees every earlier finisher's recorded error (release sequence on `pending`).
//! - `enabled` is stored with `Release` once every callback is installed, loaded with
//!   `Acquire` by `poll`.

use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc as StdArc;

use crate::backend::state::Birth;
use crate::backend::{
    ArrayMemberOf, Backend, ContainerKind, Hold, MemberScheme, MembersOf, Node, NodeVtable, Rcu,
};
use crate::error::FenceError;
use crate::fence::{Fence, FenceOps, context_alloc};
use crate::sync::{AtomicBool, AtomicUsize, Ordering, UnsafeCell};

/// One member and the array's callback on it.
#[repr(C)]
struct Entry<B: Backend> {
    /// First: a node pointer is a pointer to the entry.
    node: Node<B>,
    /// The array, as a `Fence::into_raw` reference held by the installed callback and given
    /// up by the node's release.
    array: UnsafeCell<*const ()>,
    member: ArrayMemberOf<B>,
}

/// A fence over a set of member fences (`dma_fence_array`).
///
/// [`FenceArray::all`] and [`FenceArray::any`] build one on a fresh context;
/// [`FenceArray::create`] is the kernel's constructor with every parameter.
///
/// ```
/// use rcu_fence::{FenceArray, Status, Timeline};
/// let tl = Timeline::new("gpu");
/// let (a, b) = (tl.fence(1), tl.fence(2));
/// let all = FenceArray::all([a.clone(), b.clone()]).unwrap();
/// all.enable_sw_signaling();
/// a.signal().unwrap();
/// assert!(!all.is_signaled());
/// b.signal().unwrap();
/// assert_eq!(all.status(), Status::Signaled);
/// assert_eq!(all.as_array().unwrap().num_fences(), 2);
/// ```
pub struct FenceArray<B: Backend = Rcu> {
    entries: Box<[Entry<B>]>,
    signal_on_any: bool,
    pending: AtomicUsize,
    /// Set once `enable_signaling` has installed every member's callback: from then on
    /// `pending` alone answers `poll`.
    enabled: AtomicBool,
}

// SAFETY: the entries' cells are written by the enable hook (once per entry, before the node
// is published) and read by that entry's callback after the list's Acquire; the rest is
// atomics and the scheme's `Send + Sync` member holds.
unsafe impl<B: Backend> Send for FenceArray<B> {}
// SAFETY: as above.
unsafe impl<B: Backend> Sync for FenceArray<B> {}

/// The array as its fence's hooks.
struct ArrayOps<B: Backend>(FenceArray<B>);

impl<B: Backend> Fence<B> {
    /// The array behind this fence, if it is one (`to_dma_fence_array`).
    pub fn as_array(&self) -> Option<&FenceArray<B>> {
        self.ops_as::<ArrayOps<B>>().map(|ops| &ops.0)
    }
}

impl<B: Backend> FenceArray<B> {
    /// A fence that signals once every one of `fences` has signalled, with the error of
    /// the first member it sees fail (or none): "wait for all, report the first error".
    /// On a fresh context, at seqno 1; `Err(Empty)` for no fences. Takes the references.
    /// Unlike [`merge`](crate::merge), it keeps every member, so no member's error is
    /// left out.
    ///
    /// The same as `FenceArray::create(fences, context_alloc(1), 1, false)`.
    ///
    /// ```
    /// use rcu_fence::{Errno, FenceArray, FenceError, Timeline};
    /// let tl = Timeline::new("gpu");
    /// let (a, b) = (tl.fence(1), tl.fence(2));
    /// let both = FenceArray::all([a.clone(), b.clone()]).unwrap();
    /// b.set_error(Errno::EIO).unwrap();
    /// b.signal().unwrap();
    /// a.signal().unwrap();
    /// assert_eq!(both.wait(), Err(FenceError::Failed(Errno::EIO)));
    /// ```
    pub fn all<I>(fences: I) -> Result<Fence<B>, FenceError>
    where
        I: IntoIterator<Item = Fence<B>>,
        I::IntoIter: ExactSizeIterator,
    {
        Self::from_members(fences.into_iter(), context_alloc(1), 1, false)
    }

    /// A fence that signals as soon as any one of `fences` has signalled, with that
    /// member's error (or none). On a fresh context, at seqno 1; `Err(Empty)` for no
    /// fences. Takes the references.
    ///
    /// The same as `FenceArray::create(fences, context_alloc(1), 1, true)`.
    ///
    /// ```
    /// use rcu_fence::{FenceArray, Timeline};
    /// let tl = Timeline::new("gpu");
    /// let (a, b) = (tl.fence(1), tl.fence(2));
    /// let either = FenceArray::any([a.clone(), b.clone()]).unwrap();
    /// b.signal().unwrap();
    /// assert_eq!(either.wait(), Ok(()));
    /// assert!(!a.is_signaled());
    /// ```
    pub fn any<I>(fences: I) -> Result<Fence<B>, FenceError>
    where
        I: IntoIterator<Item = Fence<B>>,
        I::IntoIter: ExactSizeIterator,
    {
        Self::from_members(fences.into_iter(), context_alloc(1), 1, true)
    }

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
        Self::from_members(fences.into_iter(), context, seqno, signal_on_any)
    }

    /// [`FenceArray::create`] from any exact-size source of members (one allocation for the
    /// entries, whatever the source).
    pub(crate) fn from_members(
        fences: impl ExactSizeIterator<Item = Fence<B>>,
        context: u64,
        seqno: u64,
        signal_on_any: bool,
    ) -> Result<Fence<B>, FenceError> {
        if fences.len() == 0 {
            return Err(FenceError::Empty);
        }
        let entries: Box<[Entry<B>]> = fences
            .map(|f| {
                MembersOf::<B>::admit(ContainerKind::Array, &f);
                Entry {
                    node: Node::new(&Self::VTABLE),
                    array: UnsafeCell::new(std::ptr::null()),
                    member: <ArrayMemberOf<B> as Hold<B>>::hold(f),
                }
            })
            .collect();
        let pending = if signal_on_any { 1 } else { entries.len() };
        let array = FenceArray {
            entries,
            signal_on_any,
            pending: AtomicUsize::new(pending),
            enabled: AtomicBool::new(false),
        };
        Ok(Fence::new(
            context,
            seqno,
            StdArc::new(ArrayOps(array)),
            Birth {
                seqno64: false,
                container: true,
                inert: false,
                polls: true,
                signaled_at: None,
            },
        ))
    }

    const VTABLE: NodeVtable<B> = NodeVtable {
        run: Self::member_signaled,
        release: Self::release,
    };

    /// How many members the array was built with.
    pub fn num_fences(&self) -> usize {
        self.entries.len()
    }

    /// True if the array signals on the first member rather than on all.
    pub fn signal_on_any(&self) -> bool {
        self.signal_on_any
    }

    /// The members the array still holds, in index order, as new references. Lock-free; on
    /// `Rcu` a member that has signalled after enabling is already released.
    pub fn fences(&self) -> impl Iterator<Item = Fence<B>> + '_ {
        self.entries.iter().filter_map(|e| e.member.get())
    }

    /// The member at `index`, if still held.
    pub fn fence(&self, index: usize) -> Option<Fence<B>> {
        self.entries.get(index).and_then(|e| e.member.get())
    }

    /// Finishes `entry`'s member after it signalled; true if this completed the array.
    fn finish(&self, array: &Fence<B>, entry: &Entry<B>, member: &Fence<B>) -> bool {
        // The error is recorded (on the array's own fence, the first one sticks) before the
        // member is released: readers read the member's hold first, then the error.
        array.record_error(member.error());
        entry.member.signaled();
        if self.signal_on_any {
            // AcqRel: one transition 1 → 0 completes the array.
            self.pending.swap(0, Ordering::AcqRel) == 1
        } else {
            // AcqRel: the last decrement sees every earlier finisher's error.
            self.pending.fetch_sub(1, Ordering::AcqRel) == 1
        }
    }

    /// The array's callback on a member.
    ///
    /// # Safety
    /// 1. `node` is the node of an entry of a live array, installed by `enable` (its `array`
    ///    cell holds a reference) and running.
    unsafe fn member_signaled(node: NonNull<Node<B>>, member: &Fence<B>) {
        let entry = node.cast::<Entry<B>>();
        // SAFETY: obligation 1: the reference is alive until `release`.
        let array = unsafe { Fence::<B>::borrow_raw(entry.as_ref().array.with(|a| *a)) };
        let this = array
            .as_array()
            .expect("an array's callback holds the array");
        crate::trace::member!(&*array, member, index = this.index_of(entry));
        // SAFETY: obligation 1: the entry lives in the array.
        if this.finish(&array, unsafe { entry.as_ref() }, member) {
            MembersOf::<B>::complete(Fence::clone(&array));
        }
    }

    /// Gives up the reference the installed callback held.
    ///
    /// # Safety
    /// 1. `node` is the node of an entry whose callback was installed and has run.
    unsafe fn release(node: NonNull<Node<B>>) {
        let entry = node.cast::<Entry<B>>();
        // SAFETY: obligation 1: the reference taken at install, given up once. Dropping it may
        // free the array, and with it this entry: nothing touches it afterwards.
        drop(unsafe { Fence::<B>::from_raw(entry.as_ref().array.with(|a| *a)) });
    }

    #[cfg_attr(not(feature = "tracing"), allow(dead_code))] // read by trace events only
    fn index_of(&self, entry: NonNull<Entry<B>>) -> usize {
        let base = self.entries.as_ptr();
        // SAFETY: `entry` points into `self.entries` (it is one of this array's nodes).
        unsafe { entry.as_ptr().cast_const().offset_from(base) as usize }
    }

    /// The `enable_signaling` hook: installs each entry's callback; `false` if already
    /// complete.
    fn enable(&self, fence: &Fence<B>) -> bool {
        for entry in self.entries.iter() {
            // SAFETY: only `finish` releases a member, called by the entry's callback (not
            // installed yet: it is installed below) or by this loop (after this read).
            let Some(member) = (unsafe { entry.member.get_stable() }) else {
                continue;
            };
            let held = Fence::clone(fence).into_raw();
            // SAFETY: the hook runs once per array (the core's ENABLED bit), so this entry's
            // node is unused; the reference is written before the push publishes the node.
            entry.array.with_mut(|a| unsafe { *a = held });
            // SAFETY: the node lives in the array, which `held` keeps alive until the
            // callback has run and been released; it is linked once, and its callback gives
            // `held` up.
            let installed =
                unsafe { crate::backend::add_holding(&member, NonNull::from(&entry.node), held) };
            if !installed {
                crate::trace::member!(fence, &member, index = self.index_of(NonNull::from(entry)));
                if self.finish(fence, entry, &member) {
                    return false;
                }
            }
        }
        // Only now does every member carry a callback: from here `pending` alone answers
        // `poll`. (Until then, or if a member's hook panicked part-way, the poll walks the
        // members' flags.) Release: pairs with `poll`'s Acquire load.
        self.enabled.store(true, Ordering::Release);
        true
    }

    /// The `signaled` polling hook (see the module docs).
    fn poll(&self, fence: &Fence<B>) -> bool {
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
        let mut remaining = if self.signal_on_any {
            1
        } else {
            self.entries.len()
        };
        for entry in self.entries.iter() {
            // A released member has signalled (and its error was recorded first).
            let finished = match entry.member.get() {
                // A member's flag is set before its callbacks run, so the array's own
                // callback may not have recorded its error yet: record it here, or a
                // "true" answer would signal the array without it.
                Some(m) => {
                    let finished = m.is_signaled_shallow();
                    if finished {
                        fence.record_error(m.error());
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

impl<B: Backend> FenceOps<B> for ArrayOps<B> {
    fn driver_name(&self) -> &str {
        "dma_fence_array"
    }

    fn timeline_name(&self) -> &str {
        "unbound"
    }

    fn enable_signaling(&self, fence: &Fence<B>) -> bool {
        self.0.enable(fence)
    }

    fn signaled(&self, fence: &Fence<B>) -> bool {
        self.0.poll(fence)
    }
}

impl<B: Backend> fmt::Debug for FenceArray<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FenceArray")
            .field("num_fences", &self.entries.len())
            .field("signal_on_any", &self.signal_on_any)
            // Relaxed: a diagnostic snapshot.
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish()
    }
}
