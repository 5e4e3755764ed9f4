//! The `Rcu` scheme: one atomic state word per fence, a lock-free callback list claimed by
//! one swap, callbacks run with no lock held, and every follow-on operation (callbacks of a
//! fence signalled inside a callback, enabling of nested members, drops) flattened through
//! the per-thread work list.
//!
//! # The fence's state machine
//!
//! ```text
//!  pending ──set_error──▶ pending+error        (CAS on the word; refused once SIGNALED)
//!     │  └─enable────────▶ ENABLED              (fetch_or; the hook runs for the first caller)
//!     ▼
//!  SIGNALED (fetch_or; the winner alone continues) ─▶ TIMESTAMP (timestamp written)
//!     ─▶ list CLOSED (swap) ─▶ callbacks run in FIFO order, no lock held
//! ```
//!
//! # Orderings
//! - `signal`'s `fetch_or(SIGNALED)` is `AcqRel`: `Release` publishes everything the
//!   signaller did before (the work the fence stands for) and freezes the error to readers
//!   that `Acquire` the word; `Acquire` orders the winner after a racing `set_error`'s CAS.
//! - the `TIMESTAMP` bit is set with `Release` after the cell is written; `timestamp()`
//!   reads the cell only after an `Acquire` load shows the bit.
//! - readers (`is_signaled`, `error`, `status`) load the word with `Acquire`, pairing with
//!   the signaller's `Release`.

mod callbacks;
mod chain;

use std::time::Instant;

use crate::backend::{Backend, sealed::Sealed};
use crate::error::{Errno, FenceError};
use crate::fence::Fence;
use crate::sync::{AtomicU64, Ordering, UnsafeCell, spin_hint, thread};
use crate::work::{self, Job};

use self::callbacks::{Key, List};
use crate::backend::word::{self, Word};

/// The default backend: callbacks run with no lock held, container members are read
/// under RCU, and nothing recurses with nesting depth.
///
/// ```
/// use rcu_fence::{Rcu, Timeline};
/// let tl: Timeline<Rcu> = Timeline::new("gpu"); // the same as Timeline::new_in("gpu", Rcu)
/// let f = tl.fence(1);
/// let g = f.clone();
/// // A callback may use the fence API on its own fence: no lock is held.
/// f.add_callback(move |me| assert!(me.add_callback(|_| {}).is_err() && g.is_signaled())).unwrap();
/// f.signal().unwrap();
/// ```
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct Rcu;

impl Backend for Rcu {
    const NAME: &'static str = "rcu";
}

/// Per-fence state of the `Rcu` backend.
#[allow(unreachable_pub)]
pub struct State {
    word: AtomicU64,
    /// Written once by the signal winner before `TIMESTAMP` is set.
    timestamp: UnsafeCell<Option<Instant>>,
    callbacks: List,
}

// SAFETY: the timestamp cell is written once by the unique signal winner and read only after
// an Acquire load observes the Release-set TIMESTAMP bit (see the module's Orderings).
unsafe impl Sync for State {}
// SAFETY: all fields are owned values or atomics; the cell holds a plain `Instant`.
unsafe impl Send for State {}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("word", &self.load())
            .finish_non_exhaustive()
    }
}

impl State {
    fn load(&self) -> Word {
        // Acquire: pairs with the signaller's Release; a reader who sees SIGNALED sees
        // everything the signaller did before.
        Word(self.word.load(Ordering::Acquire))
    }
}

impl Sealed for Rcu {
    type State = State;
    type CallbackKey = Key;
    const FLAT_DROP: bool = true;
    type Member = rcu::Slot<Fence<Rcu>>;

    fn member_new(fence: Option<Fence<Rcu>>) -> Self::Member {
        rcu::Slot::new(fence)
    }

    fn member_get(member: &Self::Member) -> Option<Fence<Rcu>> {
        member.load_clone()
    }

    fn member_is_held(member: &Self::Member) -> bool {
        !member.is_empty()
    }

    fn member_signaled(member: &Self::Member) {
        // The container's reference goes; readers that still see it keep it alive until
        // they leave their read-side section.
        member.take();
    }

    fn member_replace(
        member: &Self::Member,
        current: &Fence<Rcu>,
        new: Option<Fence<Rcu>>,
    ) -> bool {
        member
            .compare_exchange(current.addr() as *const (), new)
            .is_ok()
    }

    fn signal_container(container: Fence<Rcu>) {
        // No lock is held in a callback: signal directly. The kernel bounces this through
        // irq_work because its member callback runs under the member's lock.
        let _ = container.signal();
    }

    fn chain_enable(link: &Fence<Rcu>) -> bool {
        chain::enable(link)
    }

    fn check_nesting(_container: &'static str, _members: &[&Fence<Rcu>]) {
        // Any nesting is allowed on this backend.
    }

    fn new_state(signaled_at: Option<Instant>) -> State {
        let bits = if signaled_at.is_some() {
            Word::SIGNALED | Word::TIMESTAMP | Word::ENABLED
        } else {
            0
        };
        State {
            word: AtomicU64::new(bits),
            timestamp: UnsafeCell::new(signaled_at),
            callbacks: List::new(signaled_at.is_some()),
        }
    }

    fn is_signaled_flag(state: &State) -> bool {
        state.load().is_signaled()
    }

    fn error(state: &State) -> Option<Errno> {
        let word = state.load();
        if word.is_signaled() {
            word.error()
        } else {
            None
        }
    }

    fn timestamp(state: &State) -> Option<Instant> {
        let mut word = state.load();
        if !word.is_signaled() {
            return None;
        }
        // The winner sets TIMESTAMP right after SIGNALED; wait out that short window.
        let mut spins = 0u32;
        while !word.has_timestamp() {
            if spins < 64 {
                spin_hint();
            } else {
                thread::yield_now();
            }
            spins += 1;
            word = state.load();
        }
        // SAFETY: TIMESTAMP observed with Acquire: the winner's write is complete and final.
        state.timestamp.with(|t| unsafe { *t })
    }

    fn set_error(state: &State, error: Errno) -> Result<(), FenceError> {
        word::set_error(&state.word, error)
    }

    fn signal(fence: &Fence<Rcu>, at: Option<Instant>) -> Result<(), FenceError> {
        let state = &fence.inner().state;
        // See the module's Orderings; a container applies its members' first error with
        // the signal, unless an error was set on the container itself.
        let previous = word::signal(&state.word, Word::SIGNALED, fence.container_error());
        if previous.is_signaled() {
            return Err(FenceError::AlreadySignaled);
        }
        crate::trace::signaled!(fence);
        let at = at.unwrap_or_else(Instant::now);
        // SAFETY: only the winner of SIGNALED gets here, once; readers wait for TIMESTAMP.
        state.timestamp.with_mut(|t| unsafe { *t = Some(at) });
        // Release: publishes the timestamp to `timestamp()`'s Acquire load.
        state.word.fetch_or(Word::TIMESTAMP, Ordering::Release);
        let first = state.callbacks.close(&state.word, previous);
        callbacks::run_or_queue(fence, first);
        Ok(())
    }

    fn enable_signaling(fence: &Fence<Rcu>) {
        work::scope(|nested| enable(fence, nested));
    }

    fn add_callback<F: FnOnce(&Fence<Rcu>) + Send + 'static>(
        fence: &Fence<Rcu>,
        func: F,
    ) -> Result<Key, FenceError> {
        let state = &fence.inner().state;
        if state.load().is_signaled() {
            return Err(FenceError::AlreadySignaled);
        }
        work::scope(|nested| {
            // The kernel enables first, then appends; if enabling finds the work complete,
            // the fence signals and the callback is refused.
            enable(fence, nested);
            callbacks::add(&state.callbacks, func).ok_or(FenceError::AlreadySignaled)
        })
    }

    fn remove_callback(fence: &Fence<Rcu>, key: Key) -> bool {
        let state = &fence.inner().state;
        callbacks::remove(&state.callbacks, &state.word, key)
    }

    fn take_pending(state: &mut State) -> Option<State> {
        let list = state.callbacks.take_pending()?;
        // Relaxed: `&mut`: exclusive access.
        let word = Word(state.word.load(Ordering::Relaxed));
        Some(State {
            word: AtomicU64::new(word.0 & !(Word::ENABLED | Word::UNLINKING)),
            timestamp: UnsafeCell::new(None),
            callbacks: list,
        })
    }

    fn stub() -> Fence<Rcu> {
        #[cfg(not(loom))]
        {
            static STUB: std::sync::OnceLock<Fence<Rcu>> = std::sync::OnceLock::new();
            STUB.get_or_init(|| crate::fence::private_stub(Instant::now()))
                .clone()
        }
        #[cfg(loom)]
        {
            crate::fence::private_stub(Instant::now())
        }
    }
}

/// Sets ENABLED; the first caller runs the hook now (outermost) or from the work list
/// (nested, so that enabling a container's nested members never recurses).
fn enable(fence: &Fence<Rcu>, nested: bool) {
    let state = &fence.inner().state;
    if state.load().is_enabled() {
        return;
    }
    // AcqRel: the hook runs at most once; ordering it after a racing SIGNALED lets the
    // check below skip a hook that is no longer needed (the kernel's test_and_set, re-check).
    let previous = Word(state.word.fetch_or(Word::ENABLED, Ordering::AcqRel));
    if previous.is_enabled() || previous.is_signaled() {
        return;
    }
    if nested {
        // SAFETY: `enable_job` takes back this handle once.
        work::push(unsafe { Job::new(fence.clone().into_raw(), std::ptr::null(), enable_job) });
    } else {
        run_enable_hook(fence);
    }
}

fn run_enable_hook(fence: &Fence<Rcu>) {
    crate::trace::event!("fence_enable_signal", fence);
    if !fence.enable_hook() {
        let _ = Rcu::signal(fence, None);
    }
}

/// # Safety
/// 1. `fence` is a `Fence<Rcu>::into_raw` handle, used once.
unsafe fn enable_job(fence: *const (), _: *const ()) {
    // SAFETY: obligation 1.
    let fence = unsafe { Fence::<Rcu>::from_raw(fence) };
    run_enable_hook(&fence);
}
