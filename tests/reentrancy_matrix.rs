//! Re-entrancy, exhaustively: every public drop and every blocking call, made from inside a
//! callback of the fence it concerns, of a member of that fence, and of a container above
//! it, on both backends. Each call completes, or is refused with a typed error; none may
//! hang (each case runs under a watchdog) or panic.
//!
//! The shape: `a` (a `DriverFence`'s fence) and `b` are the members of the array `x`, which
//! is the member of `outer`. The calls concern `x` ("the fence"), from inside a callback of
//! `x` itself, of its member `a` (run while `x` is still pending: the callback is installed
//! before `x` puts its own on `a`), and of `outer`, the container above `x`.
//!
//! Expected: on `Rcu`, every call completes (a blocking wait inside a callback first runs
//! the work its thread owes, so what it waits for can complete). On `Locked` a callback holds
//! its fence's lock, as in the kernel, which forbids blocking there: a wait that would block
//! (on `x` from inside `a`'s callback, while `x` is pending; the fd's poll from `x`'s own
//! callback too, where the fd turns readable by a later callback of the same signal) is
//! refused with `WouldDeadlock`; everything else completes. `LockedRcu` runs callbacks under
//! the lock too: the same answers.

mod common;

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::Duration;

use common::{CountingWaker, timeline, watchdog};
use rcu_fence::{
    Backend, CallbackRegistration, Fence, FenceArray, FenceError, Locked, LockedRcu, Rcu,
    context_alloc, unwrap, wait_any_timeout,
};

/// Where the call is made from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Context_ {
    /// A callback of `x` itself.
    Own,
    /// A callback of `a`, a member of `x`, while `x` is pending.
    Member,
    /// A callback of `outer`, the container above `x`.
    Above,
}

/// What the call did.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Completed,
    Refused(FenceError),
}

const LONG: Duration = Duration::from_secs(10);

type Registration<B> = CallbackRegistration<Box<dyn FnOnce(&Fence<B>) + Send>, B>;

/// What each call may hold on to, made before the signals.
struct Props<B: Backend> {
    x: Fence<B>,
    driver: Option<rcu_fence::DriverFence<B>>,
    id: Option<rcu_fence::CallbackId<B>>,
    registration: Option<Pin<Box<Registration<B>>>>,
    future: Option<Pin<Box<rcu_fence::FenceFuture<B>>>>,
    #[cfg(target_os = "linux")]
    fd: Option<rcu_fence::FenceFd<B>>,
    iterator: Option<rcu_fence::Unwrap<B>>,
    orphan: Option<Fence<B>>,
}

/// The calls, by name.
const CALLS: &[&str] = &[
    "wait",
    "wait_timeout",
    "wait_any_timeout",
    "remove_callback",
    "drop CallbackId",
    "drop CallbackRegistration",
    "drop FenceFuture",
    "drop DriverFence",
    "drop FenceFd",
    "FenceFd::poll",
    "drop Unwrap",
    "drop the last handle of a pending fence with a callback",
    "synchronize_rcu",
];

fn call<B: Backend>(name: &str, props: &mut Props<B>) -> Outcome {
    let x = props.x.clone();
    fn refused<T>(r: Result<T, FenceError>) -> Outcome {
        match r {
            Ok(_) => Outcome::Completed,
            Err(e) => Outcome::Refused(e),
        }
    }
    match name {
        "wait" => {
            if common::is_rcu::<B>() || x.test_signaled_flag() {
                refused(x.wait())
            } else {
                // Where blocking is refused `wait` returns `Err(WouldDeadlock)` before it
                // would block (tests/wait.rs checks it); with a long timeout the same check
                // answers here without risking a hang where blocking is allowed.
                refused(x.wait_timeout(LONG))
            }
        }
        "wait_timeout" => refused(x.wait_timeout(LONG)),
        "wait_any_timeout" => refused(wait_any_timeout(std::slice::from_ref(&x), LONG)),
        "remove_callback" => {
            let id = props.id.take().expect("an id");
            let _ = x.remove_callback(id);
            Outcome::Completed
        }
        "drop CallbackId" => {
            drop(props.id.take());
            Outcome::Completed
        }
        "drop CallbackRegistration" => {
            drop(props.registration.take());
            Outcome::Completed
        }
        "drop FenceFuture" => {
            drop(props.future.take());
            Outcome::Completed
        }
        "drop DriverFence" => {
            drop(props.driver.take());
            Outcome::Completed
        }
        #[cfg(target_os = "linux")]
        "drop FenceFd" => {
            drop(props.fd.take());
            Outcome::Completed
        }
        #[cfg(target_os = "linux")]
        "FenceFd::poll" => match props.fd.as_ref().expect("an fd").poll(Some(LONG)) {
            Ok(_) => Outcome::Completed,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Outcome::Refused(FenceError::WouldDeadlock)
            }
            Err(e) => panic!("poll failed: {e}"),
        },
        "drop Unwrap" => {
            drop(props.iterator.take());
            Outcome::Completed
        }
        "drop the last handle of a pending fence with a callback" => {
            drop(props.orphan.take());
            Outcome::Completed
        }
        "synchronize_rcu" => {
            rcu_fence::synchronize_rcu();
            Outcome::Completed
        }
        _ => Outcome::Completed, // not on this platform
    }
}

/// Runs `name` from `context` on backend `B`; returns its outcome, after checking that the
/// whole shape completed.
fn run_case<B: Backend>(name: &'static str, context: Context_) -> Outcome {
    watchdog(
        &format!("{}: {name} from {context:?}", B::NAME),
        move || {
            let tl = timeline::<B>();
            let driver = tl.driver_fence(1);
            let a = driver.fence();
            let b = tl.fence(2);
            let x =
                FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, false).unwrap();
            let outcome = Arc::new(Mutex::new(None));
            let props: Arc<Mutex<Option<Props<B>>>> = Arc::new(Mutex::new(None));
            let make = {
                let (props, outcome) = (props.clone(), outcome.clone());
                move |_: &Fence<B>| {
                    let mut props = props.lock().unwrap().take().expect("runs once");
                    *outcome.lock().unwrap() = Some(call(name, &mut props));
                }
            };
            // Installed first: on `a`, it then runs before `x`'s own callback on `a` (FIFO), so
            // `x` is still pending when the call is made. (`LockedRcu` enables `x` as soon as
            // `outer` is built over it, so `outer` is built after.)
            let mut make = Some(make);
            match context {
                Context_::Own => drop(x.add_callback(make.take().unwrap()).unwrap()),
                Context_::Member => drop(a.add_callback(make.take().unwrap()).unwrap()),
                Context_::Above => {}
            }
            let outer = FenceArray::create(vec![x.clone()], context_alloc(1), 1, false).unwrap();
            if let Some(make) = make {
                drop(outer.add_callback(make).unwrap());
            }
            let (_, waker) = CountingWaker::new();
            let mut future = Box::pin((&x).into_future());
            let polled = future.as_mut().poll(&mut Context::from_waker(&waker));
            assert!(polled.is_pending());
            let mut registration: Pin<Box<Registration<B>>> =
                Box::pin(CallbackRegistration::new(Box::new(|_: &Fence<B>| {})));
            registration.as_mut().register(&x).unwrap();
            let orphan = tl.fence(3);
            orphan.add_callback(|_| {}).unwrap();
            let mut iterator = unwrap(&x);
            assert!(iterator.next().is_some());
            *props.lock().unwrap() = Some(Props {
                id: Some(x.add_callback(|_| {}).unwrap()),
                x: x.clone(),
                driver: Some(driver),
                registration: Some(registration),
                future: Some(future),
                #[cfg(target_os = "linux")]
                fd: Some(x.to_fd().unwrap()),
                iterator: Some(iterator),
                orphan: Some(orphan),
            });
            outer.enable_sw_signaling();
            b.signal().unwrap();
            a.signal().unwrap();
            assert!(x.test_signaled_flag() && outer.test_signaled_flag());
            outcome.lock().unwrap().take().expect("the call was made")
        },
    )
}

fn matrix<B: Backend>(expected: impl Fn(&str, Context_) -> Outcome) {
    let mut mismatches = Vec::new();
    for &name in CALLS {
        for context in [Context_::Own, Context_::Member, Context_::Above] {
            let got = run_case::<B>(name, context);
            let want = expected(name, context);
            if got != want {
                mismatches.push(format!(
                    "{name} from {context:?}: got {got:?}, want {want:?}"
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn rcu_every_call_completes() {
    matrix::<Rcu>(|_, _| Outcome::Completed);
}

#[test]
fn locked_blocking_inside_a_callback_is_refused_never_hangs() {
    classic_expectations::<Locked>();
}

/// `LockedRcu` runs callbacks under the fence's lock too: the same refusals.
#[test]
fn locked_rcu_blocking_inside_a_callback_is_refused_never_hangs() {
    classic_expectations::<LockedRcu>();
}

fn classic_expectations<B: Backend>() {
    matrix::<B>(|name, context| {
        let waits = matches!(name, "wait" | "wait_timeout" | "wait_any_timeout");
        let poll = name == "FenceFd::poll" && cfg!(target_os = "linux");
        // A wait blocks from `a`'s callback, where `x` is pending; the fd's poll also from
        // `x`'s own callback, since the fd turns readable by a later callback of the same
        // signal, which cannot run while the caller holds the lock.
        let blocks =
            (waits || poll) && context == Context_::Member || poll && context == Context_::Own;
        if blocks {
            Outcome::Refused(FenceError::WouldDeadlock)
        } else {
            Outcome::Completed
        }
    });
}
