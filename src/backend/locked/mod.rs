//! The `Locked` scheme: the kernel's classic `dma_fence`, kept faithful so that every
//! comparison is against the real thing.
//!
//! - One lock per fence guards the callback list and the enable step (`fence->lock`).
//! - `signal` takes the lock, sets `SIGNALED`, and runs every callback **with the lock held**
//!   (`dma_fence_signal_timestamp_locked`). A callback therefore must not call anything that
//!   takes the same fence's lock (`remove_callback`, `enable_sw_signaling`, `signal` of the
//!   same fence): that is a self-deadlock, as in the kernel. Here the lock recorder
//!   ([`lockdep`]) sees it coming and panics with a message instead of hanging.
//! - `enable_signaling` runs the hook with the lock held; `false` signals under the lock.
//! - `add_callback` tests the flag without the lock first, then enables and appends under it.
//! - `remove_callback` takes the lock, which doubles as a barrier against a callback in flight.
//! - Flags, error and timestamp are readable without the lock, as the kernel's flag tests
//!   and `fence->error` are.
//! - The final put is plain recursive `Drop`, as the kernel's release is (an array drops its
//!   members, a nested array its own, and so on), except along a chain's `prev`: a member
//!   slot being dropped unlinks uniquely held chain links one by one
//!   (`dma_fence_chain_release`), so a long chain frees in constant stack.
//! - Every lock (a fence's own, a container member slot) reports to [`lockdep`] with its
//!   class: a container's own lock is class `array` or `chain`, so container → member
//!   nesting shows as such. Building a container over a container the kernel forbids is
//!   counted as a nesting warning there (the kernel's `WARN_ON`); the object is still built.
//!
//! # Orderings
//! - `SIGNALED` and `TIMESTAMP` are set by one `AcqRel` RMW after the timestamp is stored
//!   (under the lock); readers load the word with `Acquire` before reading the timestamp.
//!   The error lives in the same word (`backend::word`), so `set_error` needs no lock.

mod chain;
pub(crate) mod irq_work;
pub mod lockdep;

use std::collections::VecDeque;
use std::time::Instant;

use crate::backend::word::{self, Word};
use crate::backend::{Backend, sealed::Sealed};
use crate::error::{Errno, FenceError};
use crate::fence::{Callback, Fence};
use crate::sync::{AtomicU64, Ordering, UnsafeCell};
use crate::work;

use self::lockdep::{Lock, LockClass, LockGuard};

/// The classic scheme, faithful to the kernel: callbacks run under the fence's lock,
/// container signalling is deferred to a worker, and nesting is reported, not supported.
///
/// ```
/// use rcu_fence::{Locked, Timeline};
/// let tl = Timeline::new_in("gpu", Locked);
/// let f = tl.fence(1);
/// f.add_callback(|me| assert!(me.test_signaled_flag())).unwrap();
/// f.signal().unwrap();
/// ```
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct Locked;

impl Backend for Locked {
    const NAME: &'static str = "locked";
}

const SIGNALED: u64 = Word::SIGNALED;
const TIMESTAMP: u64 = Word::TIMESTAMP;
const ENABLED: u64 = Word::ENABLED;

/// What the lock guards.
struct Guarded {
    callbacks: VecDeque<(u64, Callback<Locked>)>,
}

/// A callback key unique in the process, so that a stale [`Key`] of a freed fence cannot
/// match a callback of a new fence allocated at the same address.
fn next_key() -> u64 {
    // A plain id allocator, not part of any protocol (hence `std`'s atomic, as
    // `context_alloc`'s). Relaxed: only uniqueness matters, which the RMW gives.
    static NEXT_KEY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT_KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Per-fence state of the `Locked` backend.
#[allow(unreachable_pub)]
pub struct State {
    /// Flags and error (`backend::word`): readable without the lock, as the kernel's flag
    /// tests and `fence->error` are; `set_error` takes no lock, as in the kernel.
    word: AtomicU64,
    /// Written under the lock by the signaller before TIMESTAMP is set.
    timestamp: UnsafeCell<Option<Instant>>,
    /// `fence->lock`; its lockdep class is set by `init_state` from what the fence is.
    lock: Lock<Guarded>,
}

// SAFETY: the timestamp cell is written once, under the lock, before the Release store of
// TIMESTAMP, and read only after an Acquire load shows TIMESTAMP.
unsafe impl Sync for State {}
// SAFETY: owned values and atomics only.
unsafe impl Send for State {}

/// What a [`CallbackId`](crate::CallbackId) holds on the `Locked` backend.
#[allow(unreachable_pub)]
#[derive(Debug)]
pub struct Key(u64);

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("flags", &self.flags())
            .finish_non_exhaustive()
    }
}

impl State {
    fn flags(&self) -> u64 {
        // Acquire: pairs with the signaller's Release RMW that set SIGNALED/TIMESTAMP after
        // the timestamp was written.
        self.word.load(Ordering::Acquire)
    }
}

/// A container's reference to one member (an array member, a chain's `prev` or `fence`),
/// under a lock of class `member`.
#[allow(unreachable_pub)]
pub struct Member {
    slot: Lock<Option<Fence<Locked>>>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member").finish_non_exhaustive()
    }
}

impl Drop for Member {
    /// The kernel's `dma_fence_chain_release` loop: while the member is a chain link held
    /// only here, steal its `prev` and free the link, whose own release then has no `prev`
    /// to recurse into; stop at a shared or non-chain fence and drop that reference.
    ///
    /// The kernel runs this loop in the chain's release, on `prev` only; here it runs for
    /// every member slot, so a uniquely held chain dropped as an array member or as a
    /// chain's `fence` unlinks the same way, as the kernel's release of that chain would.
    /// `is_unique` is stable: the container owning this slot is being freed, so nobody else
    /// can reach the member and clone it.
    fn drop(&mut self) {
        let mut next = self.slot.get_mut().take();
        while let Some(fence) = next.take() {
            if let Some(link) = fence.as_chain().filter(|_| fence.is_unique()) {
                next = link.prev.slot.lock("chain_release").take();
            }
            drop(fence);
        }
    }
}

impl Sealed for Locked {
    type State = State;
    type CallbackKey = Key;
    const FLAT_DROP: bool = false;
    type Member = Member;

    fn member_new(fence: Option<Fence<Locked>>) -> Self::Member {
        Member {
            slot: Lock::new(LockClass::Member, fence),
        }
    }

    fn member_get(member: &Self::Member) -> Option<Fence<Locked>> {
        member.slot.lock("member_get").clone()
    }

    fn member_is_held(member: &Self::Member) -> bool {
        member.slot.lock("member_is_held").is_some()
    }

    fn member_signaled(_member: &Self::Member) {
        // The kernel's containers keep their members until their own release.
    }

    fn member_replace(
        member: &Self::Member,
        current: &Fence<Locked>,
        new: Option<Fence<Locked>>,
    ) -> bool {
        let mut slot = member.slot.lock("member_replace");
        if slot.as_ref().is_some_and(|f| f.ptr_eq(current)) {
            let old = std::mem::replace(&mut *slot, new);
            drop(slot);
            drop(old);
            true
        } else {
            false
        }
    }

    fn signal_container(container: Fence<Locked>) {
        // The member's callback runs under the member's lock; signalling the container here
        // would take the container's lock inside it. The kernel bounces to irq_work.
        irq_work::queue_work(move || {
            let _ = container.signal();
        });
    }

    fn chain_enable(link: &Fence<Locked>) -> bool {
        chain::enable(link)
    }

    /// The kernel's nesting `WARN_ON`s, counted by [`lockdep`] (the object is still built):
    /// an array over an array or a chain, a chain whose `fence` is a chain. A chain over an
    /// array is the legal worst case (chain → array → fence) and is not counted.
    fn check_nesting(container: &'static str, members: &[&Fence<Locked>]) {
        let outer = match container {
            "array" => LockClass::Array,
            "chain" => LockClass::Chain,
            _ => return,
        };
        for member in members {
            let inner = if member.as_array().is_some() {
                LockClass::Array
            } else if member.as_chain().is_some() {
                LockClass::Chain
            } else {
                continue;
            };
            if outer == LockClass::Array || inner == LockClass::Chain {
                lockdep::nesting_warning(outer, inner);
            }
        }
    }

    fn new_state(signaled_at: Option<Instant>) -> State {
        State {
            word: AtomicU64::new(if signaled_at.is_some() {
                SIGNALED | TIMESTAMP | ENABLED
            } else {
                0
            }),
            timestamp: UnsafeCell::new(signaled_at),
            lock: Lock::new(
                LockClass::Fence,
                Guarded {
                    callbacks: VecDeque::new(),
                },
            ),
        }
    }

    fn init_state(state: &mut State, container: Option<&'static str>) {
        let class = match container {
            Some("array") => LockClass::Array,
            Some("chain") => LockClass::Chain,
            _ => LockClass::Fence,
        };
        state.lock.set_class(class);
    }

    fn is_signaled_flag(state: &State) -> bool {
        state.flags() & SIGNALED != 0
    }

    fn error(state: &State) -> Option<Errno> {
        if state.flags() & SIGNALED == 0 {
            return None;
        }
        Word(state.flags()).error()
    }

    fn timestamp(state: &State) -> Option<Instant> {
        if state.flags() & TIMESTAMP == 0 {
            // The kernel's signal path sets TIMESTAMP before any callback runs and under the
            // lock, so a pending fence and a fence mid-signal both read as "no timestamp yet"
            // only while SIGNALED is clear.
            return None;
        }
        // SAFETY: TIMESTAMP observed with Acquire; the write is complete and final.
        state.timestamp.with(|t| unsafe { *t })
    }

    fn set_error(state: &State, error: Errno) -> Result<(), FenceError> {
        word::set_error(&state.word, error)
    }

    fn signal(fence: &Fence<Locked>, at: Option<Instant>) -> Result<(), FenceError> {
        let state = &fence.inner().state;
        let mut guard = state.lock.lock("signal");
        signal_locked(fence, &mut guard, at)
    }

    fn enable_signaling(fence: &Fence<Locked>) {
        let state = &fence.inner().state;
        let mut guard = state.lock.lock("enable_signaling");
        let _ = enable_locked(fence, &mut guard);
    }

    fn add_callback<F: FnOnce(&Fence<Locked>) + Send + 'static>(
        fence: &Fence<Locked>,
        func: F,
    ) -> Result<Key, FenceError> {
        let state = &fence.inner().state;
        if state.flags() & SIGNALED != 0 {
            return Err(FenceError::AlreadySignaled);
        }
        let mut guard = state.lock.lock("add_callback");
        if enable_locked(fence, &mut guard) {
            return Err(FenceError::AlreadySignaled);
        }
        let key = next_key();
        guard.callbacks.push_back((key, Box::new(func)));
        Ok(Key(key))
    }

    fn remove_callback(fence: &Fence<Locked>, key: Key) -> bool {
        let mut guard = fence.inner().state.lock.lock("remove_callback");
        match guard.callbacks.iter().position(|(k, _)| *k == key.0) {
            Some(i) => {
                let removed = guard.callbacks.remove(i);
                drop(guard);
                drop(removed);
                true
            }
            None => false,
        }
    }

    fn take_pending(state: &mut State) -> Option<State> {
        let callbacks = std::mem::take(&mut state.lock.get_mut().callbacks);
        if callbacks.is_empty() {
            return None;
        }
        // Relaxed: `&mut`: exclusive access. Keep the error, drop the flags.
        let error_bits = state.word.load(Ordering::Relaxed) & !0xffff_ffff;
        Some(State {
            word: AtomicU64::new(error_bits),
            timestamp: UnsafeCell::new(None),
            lock: Lock::new(state.lock.class(), Guarded { callbacks }),
        })
    }

    fn stub() -> Fence<Locked> {
        #[cfg(not(loom))]
        {
            static STUB: std::sync::OnceLock<Fence<Locked>> = std::sync::OnceLock::new();
            STUB.get_or_init(|| crate::fence::private_stub(Instant::now()))
                .clone()
        }
        #[cfg(loom)]
        {
            crate::fence::private_stub(Instant::now())
        }
    }
}

/// `dma_fence_signal_timestamp_locked`: the caller holds the fence's lock. Callbacks run
/// here, with the lock still held.
fn signal_locked(
    fence: &Fence<Locked>,
    guard: &mut LockGuard<'_, Guarded>,
    at: Option<Instant>,
) -> Result<(), FenceError> {
    let state = &fence.inner().state;
    if state.flags() & SIGNALED != 0 {
        return Err(FenceError::AlreadySignaled);
    }
    let callbacks = std::mem::take(&mut guard.callbacks);
    // SAFETY: we hold the lock and SIGNALED is clear: no other writer, no reader yet.
    state
        .timestamp
        .with_mut(|t| unsafe { *t = Some(at.unwrap_or_else(Instant::now)) });
    // One RMW under the lock: a racing lock-free set_error lands before it or fails; the
    // timestamp written above is published with TIMESTAMP (see `backend::word`).
    word::signal(&state.word, SIGNALED | TIMESTAMP, fence.container_error());
    crate::trace::signaled!(fence);
    // Each callback is isolated from a panic in another; the first panic is resumed after
    // the lock is released (by the scope, which outlives the guard's owner).
    work::scope(|_| {
        for (_, func) in callbacks {
            crate::trace::event!("fence_callback_run", fence);
            work::catching(|| func(fence));
        }
    });
    Ok(())
}

/// The enable step under the lock. Returns true if the fence is (now) signalled.
fn enable_locked(fence: &Fence<Locked>, guard: &mut LockGuard<'_, Guarded>) -> bool {
    let state = &fence.inner().state;
    let flags = state.flags();
    if flags & SIGNALED != 0 {
        return true;
    }
    if flags & ENABLED != 0 {
        return false;
    }
    // Relaxed: the lock serialises every writer of ENABLED; other bits change by RMW.
    state.word.fetch_or(ENABLED, Ordering::Relaxed);
    crate::trace::event!("fence_enable_signal", fence);
    if !fence.enable_hook() {
        let _ = signal_locked(fence, guard, None);
        return true;
    }
    false
}
