//! The `tracing` feature: the events, their order and fields, on both backends
//! (`cargo test --features tracing --test tracing`).
#![cfg(feature = "tracing")]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rcu_fence::{
    Backend, Errno, Fence, FenceArray, FenceChain, FenceOps, Locked, LockedRcu, Rcu, Timeline,
    context_alloc,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One recorded event: its name and fields (values as text).
#[derive(Clone, Debug)]
struct Recorded {
    name: &'static str,
    fields: BTreeMap<String, String>,
}

impl Recorded {
    fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .unwrap_or_else(|| panic!("{} has no field {name}: {self:?}", self.name))
    }
}

/// A subscriber that records every `rcu_fence` event of this thread.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Recorded>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl Subscriber for Collector {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "rcu_fence"
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        // Trace points are TRACE; the diagnostics a user must see are WARN.
        let expected = if WARNINGS.contains(&metadata.name()) {
            Level::WARN
        } else {
            Level::TRACE
        };
        assert_eq!(*metadata.level(), expected, "{}", metadata.name());
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Recorded {
            name: metadata.name(),
            fields,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// The events emitted at level WARN: diagnostics, not trace points.
const WARNINGS: [&str; 2] = ["timeline_out_of_order", "lockdep_nesting_warning"];

/// Runs `f` with a collector for this thread; returns what it recorded.
fn record(f: impl FnOnce()) -> Vec<Recorded> {
    let collector = Collector::default();
    tracing::subscriber::with_default(collector.clone(), f);
    collector.0.lock().unwrap().clone()
}

/// The events about the fence `(context, seqno)`, by name.
fn names_for(events: &[Recorded], fence: &Fence<impl Backend>) -> Vec<&'static str> {
    events
        .iter()
        .filter(|e| is(e, fence))
        .map(|e| e.name)
        .collect()
}

fn is(e: &Recorded, fence: &Fence<impl Backend>) -> bool {
    e.fields.get("context") == Some(&fence.context().to_string())
        && e.fields.get("seqno") == Some(&fence.seqno().to_string())
}

macro_rules! every_backend {
    ($($name:ident),* $(,)?) => {
        mod rcu {
            $(#[test] fn $name() { super::$name(super::Rcu); })*
        }
        mod locked {
            $(#[test] fn $name() { super::$name(super::Locked); })*
        }
        mod locked_rcu {
            $(#[test] fn $name() { super::$name(super::LockedRcu); })*
        }
    };
}

every_backend!(
    lifecycle,
    error_field,
    remove,
    enable_signal_only_with_hooks,
    blocking_wait,
    array_members,
    chain_inputs,
    in_order_signals_are_not_reported,
);

fn lifecycle<B: Backend>(backend: B) {
    let tl = Timeline::new_in("trace", backend);
    let mut fence = None;
    let events = record(|| {
        let f = tl.fence(7);
        f.add_callback(|_| {}).unwrap();
        f.signal().unwrap();
        assert!(f.signal().is_err()); // no second event
        fence = Some(f);
    });
    let fence = fence.unwrap();
    assert_eq!(
        names_for(&events, &fence),
        [
            "fence_init",
            "fence_callback_added",
            "fence_signaled",
            "fence_callback_run"
        ]
    );
    let signaled = events.iter().find(|e| e.name == "fence_signaled").unwrap();
    assert_eq!(signaled.field("error"), "0");
    assert_eq!(signaled.field("driver"), "rcu-fence");
    assert_eq!(signaled.field("timeline"), "trace");
}

fn error_field<B: Backend>(backend: B) {
    let tl = Timeline::new_in("trace", backend);
    let events = record(|| {
        let f = tl.fence(1);
        f.set_error(Errno::ETIME).unwrap();
        f.signal().unwrap();
    });
    let signaled = events.iter().find(|e| e.name == "fence_signaled").unwrap();
    assert_eq!(signaled.field("error"), Errno::ETIME.get().to_string());
}

fn remove<B: Backend>(backend: B) {
    let tl = Timeline::new_in("trace", backend);
    let f = tl.fence(1);
    let events = record(|| {
        let id = f.add_callback(|_| unreachable!()).unwrap();
        assert!(f.remove_callback(id));
        f.signal().unwrap();
    });
    assert_eq!(
        names_for(&events, &f),
        [
            "fence_callback_added",
            "fence_callback_removed",
            "fence_signaled"
        ]
    );
}

/// Driver hooks with an `enable_signaling` of their own.
struct Hooked;

impl<B: Backend> FenceOps<B> for Hooked {
    fn driver_name(&self) -> &str {
        "hooked"
    }
    fn timeline_name(&self) -> &str {
        "trace"
    }
}

/// A plain timeline fence has no `enable_signaling` hook, so (as in the kernel) it never
/// reports `fence_enable_signal`; a fence with driver hooks reports it once, before the
/// first callback is installed.
fn enable_signal_only_with_hooks<B: Backend>(backend: B) {
    let tl = Timeline::new_in("trace", backend);
    let f = tl.fence_with_ops(1, Arc::new(Hooked));
    let events = record(|| {
        f.add_callback(|_| {}).unwrap();
        f.add_callback(|_| {}).unwrap();
        f.enable_sw_signaling();
        f.signal().unwrap();
    });
    assert_eq!(
        names_for(&events, &f),
        [
            "fence_enable_signal",
            "fence_callback_added",
            "fence_callback_added",
            "fence_signaled",
            "fence_callback_run",
            "fence_callback_run"
        ]
    );
}

fn blocking_wait<B: Backend>(backend: B) {
    let tl = Timeline::new_in("trace", backend);
    let f = tl.fence(1);
    let events = record(|| {
        // Finds the fence pending at its deadline: start, then end with signaled=false.
        assert!(f.wait_timeout(Duration::from_millis(10)).is_err());
        let g = f.clone();
        let signaller = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            g.signal().unwrap();
        });
        f.wait().unwrap();
        signaller.join().unwrap();
        // Already signalled: no blocking, no events.
        f.wait().unwrap();
    });
    let waits: Vec<(&str, Option<&String>)> = events
        .iter()
        .filter(|e| e.name.starts_with("fence_wait") && is(e, &f))
        .map(|e| (e.name, e.fields.get("signaled")))
        .collect();
    let (t, f_) = ("true".to_string(), "false".to_string());
    assert_eq!(
        waits,
        [
            ("fence_wait_start", None),
            ("fence_wait_end", Some(&f_)),
            ("fence_wait_start", None),
            ("fence_wait_end", Some(&t)),
        ]
    );
}

fn array_members<B: Backend>(backend: B) {
    let tl = Timeline::new_in("trace", backend);
    let (a, b) = (tl.fence(1), tl.fence(2));
    b.signal().unwrap(); // finished by the enable loop
    let array = FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 9, false).unwrap();
    let events = record(|| {
        array.enable_sw_signaling();
        a.signal().unwrap(); // finished by the member's callback
    });
    let mut members: Vec<(String, String, String)> = events
        .iter()
        .filter(|e| e.name == "container_member_signaled" && is(e, &array))
        .map(|e| {
            (
                e.field("index").to_string(),
                e.field("member_context").to_string(),
                e.field("member_seqno").to_string(),
            )
        })
        .collect();
    members.sort();
    let ctx = a.context().to_string();
    assert_eq!(
        members,
        [
            ("0".to_string(), ctx.clone(), "1".to_string()),
            ("1".to_string(), ctx, "2".to_string())
        ]
    );
    // Every scheme signals the container on this thread before the member's signal
    // returns: `Rcu` from the member's callback, the classic ones from the irq_work that
    // callback queued.
    assert!(names_for(&events, &array).contains(&"fence_signaled"));
}

fn chain_inputs<B: Backend>(backend: B) {
    let tl = Timeline::new_in("trace", backend);
    let (a, b) = (tl.fence(1), tl.fence(2));
    let p1 = FenceChain::create(None, a.clone(), 1);
    let p2 = FenceChain::create(Some(p1.clone()), b.clone(), 2);
    let events = record(|| {
        p2.enable_sw_signaling();
        b.signal().unwrap();
        a.signal().unwrap();
    });
    // Whatever the scheme, the head link hears about the fences it waits on.
    let seen: Vec<String> = events
        .iter()
        .filter(|e| e.name == "container_member_signaled" && is(e, &p2))
        .map(|e| e.field("member_seqno").to_string())
        .collect();
    assert!(!seen.is_empty(), "{events:?}");
    assert!(p2.is_signaled());
    // Signalled on this thread, before the last input's signal returned (as above).
    assert!(names_for(&events, &p2).contains(&"fence_signaled"));
}

/// A timeline signalling in order, including a callback of one fence signalling the next
/// (which runs before the outer signal returns), is not reported.
fn in_order_signals_are_not_reported<B: Backend>(backend: B) {
    let tl = Timeline::new_in("in-order", backend);
    let events = record(|| {
        let fences: Vec<_> = (1..=4).map(|s| tl.fence(s)).collect();
        let next = fences[2].clone();
        fences[1]
            .add_callback(move |_| next.signal().unwrap())
            .unwrap();
        fences[0].signal().unwrap();
        fences[1].signal().unwrap();
        fences[3].signal().unwrap();
        assert!(fences[2].signal().is_err()); // already signalled: not a new signal
    });
    assert!(
        !events.iter().any(|e| e.name == "timeline_out_of_order"),
        "{events:?}"
    );
}

/// Debug builds report a timeline that signals a seqno earlier than one it has signalled,
/// once per timeline, as a WARN event with the timeline's name and both seqnos.
#[cfg(debug_assertions)]
#[test]
fn out_of_order_signal_is_reported_once_per_timeline() {
    fn backwards<B: Backend>(name: &str, backend: B) {
        let tl = Timeline::new_in(name, backend);
        let fences: Vec<_> = (1..=3).map(|s| tl.fence(s)).collect();
        for f in fences.iter().rev() {
            f.signal().unwrap();
        }
    }
    let events = record(|| {
        backwards("backwards-a", Rcu);
        backwards("backwards-b", Rcu);
        backwards("backwards-c", Locked);
    });
    let reports: Vec<_> = events
        .iter()
        .filter(|e| e.name == "timeline_out_of_order")
        .collect();
    let timelines: Vec<_> = reports.iter().map(|r| r.field("timeline")).collect();
    assert_eq!(timelines, ["backwards-a", "backwards-b", "backwards-c"]);
    assert_eq!(reports[0].field("seqno"), "2");
    assert_eq!(reports[0].field("after"), "3");
}

/// `Locked` tells the user about a nesting the kernel warns about, without being asked:
/// a WARN event per occurrence, naming both kinds.
#[test]
fn locked_nesting_warning_is_emitted() {
    let tl = Timeline::new_in("nest", Locked);
    let events = record(|| {
        let inner = FenceArray::all([tl.fence(1)]).unwrap();
        let _outer = FenceArray::all([inner]).unwrap();
        let link = FenceChain::create(None, tl.fence(2), 1);
        let _bad = FenceChain::create(None, link, 2);
    });
    let warnings: Vec<_> = events
        .iter()
        .filter(|e| e.name == "lockdep_nesting_warning")
        .map(|e| (e.field("container"), e.field("member")))
        .collect();
    assert_eq!(warnings, [("array", "array"), ("chain", "chain")]);
    // `Rcu` allows any nesting: nothing to warn about.
    let tl = Timeline::new("nest");
    let events = record(|| {
        let inner = FenceArray::all([tl.fence(1)]).unwrap();
        let _outer = FenceArray::all([inner]).unwrap();
    });
    assert!(!events.iter().any(|e| e.name == "lockdep_nesting_warning"));
}

/// Events from a thread without a subscriber go nowhere, and the library behaves the same.
#[test]
fn no_subscriber_no_effect() {
    let f = Timeline::new("trace").fence(1);
    f.add_callback(|_| {}).unwrap();
    f.signal().unwrap();
    let _ = (Rcu, Locked);
}
