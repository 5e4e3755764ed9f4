//! B9: heap bytes per plain fence, per array member, per chain link and per callback, from
//! a counting global allocator (its own binary: a global allocator is per program).
//!
//! Each figure is the growth of live bytes while `N` objects are built and kept, divided by
//! `N`; the objects they are built over are made before the count starts. An `_enabled`
//! figure is what enabling adds (the callbacks a container installs on its members, which
//! any waiter causes); the report quotes built + enabled as the headline per member or link,
//! as the kernel's layout counts an array's `callbacks[]`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};

use common::for_each_backend;
use rcu_fence::{Backend, Fence, FenceArray, FenceChain, Timeline, context_alloc};
use serde_json::json;

/// Counts live bytes and allocations; forwards to the system allocator.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to `System` with the same arguments; the counters are plain
// atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's obligations for `alloc` are passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's obligations for `realloc` are passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Objects per measurement.
const N: usize = 1024;

/// Live bytes and allocations per object added by `build`, which must keep what it builds.
fn per_object<T>(n: usize, build: impl FnOnce() -> T) -> (f64, f64, T) {
    let (live, allocs) = (LIVE.load(Ordering::SeqCst), ALLOCS.load(Ordering::SeqCst));
    let kept = black_box(build());
    let bytes = (LIVE.load(Ordering::SeqCst) - live) as f64 / n as f64;
    let count = (ALLOCS.load(Ordering::SeqCst) - allocs) as f64 / n as f64;
    (bytes, count, kept)
}

/// B9's shared workload: the four shapes, measured on backend `B`.
fn measure<B: Backend>() -> serde_json::Value {
    let tl = Timeline::new_in("b9", B::default());
    let mut out = serde_json::Map::new();
    let mut put = |name: &str, bytes: f64, allocs: f64| {
        out.insert(
            name.to_string(),
            json!({ "bytes": bytes, "allocs": allocs }),
        );
    };

    let mut fences: Vec<Fence<B>> = Vec::with_capacity(N);
    let (bytes, allocs, _) = per_object(N, || fences.extend((0..N as u64).map(|s| tl.fence(s))));
    put("fence", bytes, allocs);

    let (bytes, allocs, array) = per_object(N, || {
        FenceArray::create(fences.to_vec(), context_alloc(1), 1, false).unwrap()
    });
    put("array_member", bytes, allocs);
    let (bytes, allocs, ()) = per_object(N, || array.enable_sw_signaling());
    put("array_member_enabled", bytes, allocs);

    let mut links: Vec<Fence<B>> = Vec::with_capacity(N);
    let own: Vec<Fence<B>> = (0..N as u64).map(|s| tl.fence(s)).collect();
    let (bytes, allocs, _) = per_object(N, || {
        for (i, f) in own.iter().enumerate() {
            let link = FenceChain::create(links.last().cloned(), f.clone(), i as u64 + 1);
            links.push(link);
        }
    });
    put("chain_link", bytes, allocs);
    let (bytes, allocs, ()) = per_object(N, || links.iter().for_each(|l| l.enable_sw_signaling()));
    put("chain_link_enabled", bytes, allocs);

    static SINK: u64 = 0;
    let fence = tl.fence(0);
    let (bytes, allocs, _) = per_object(N, || {
        for _ in 0..N {
            let sink: &'static u64 = &SINK;
            fence
                .add_callback(move |_| {
                    black_box(sink);
                })
                .unwrap();
        }
    });
    put("callback", bytes, allocs);

    for f in fences.iter().chain(&own) {
        let _ = f.signal();
    }
    let _ = fence.signal();
    drop((array, links, fences, own, fence));
    rcu_fence::synchronize_rcu();
    serde_json::Value::Object(out)
}

/// The floor: a fence as one `Arc` of a flag and a list head; a member as one pointer in a
/// `Vec`; a link as an `Arc` of two pointers and a seqno; a callback as one list node with
/// its closure inline (next, code, one captured pointer); enabling an array member installs
/// one such callback.
fn floor() -> serde_json::Value {
    type FloorFence = Arc<(AtomicBool, AtomicUsize)>;
    let (fence, fa, fences) = per_object(N, || {
        (0..N)
            .map(|_| Arc::new((AtomicBool::new(false), AtomicUsize::new(0))))
            .collect::<Vec<FloorFence>>()
    });
    let (member, ma, members) = per_object(N, || fences.to_vec());
    type Link = Arc<(Option<FloorFence>, Option<FloorFence>, u64)>;
    let (link, la, _links) = per_object(N, || {
        fences
            .iter()
            .map(|f| Arc::new((Some(f.clone()), None, 0)))
            .collect::<Vec<Link>>()
    });
    static SINK: u64 = 0;
    /// A callback node with its closure inline: the list link, the code, what it captured.
    struct Node {
        _next: Option<Box<Node>>,
        _call: fn(&u64),
        _captured: &'static u64,
    }
    let (callback, ca, _cbs) = per_object(N, || {
        (0..N)
            .map(|_| {
                Box::new(Node {
                    _next: None,
                    _call: |x| {
                        black_box(x);
                    },
                    _captured: &SINK,
                })
            })
            .collect::<Vec<_>>()
    });
    drop(members);
    // The `Vec`s that keep the objects count once per object (one pointer each): remove them.
    let vec = std::mem::size_of::<usize>() as f64;
    json!({
        "fence": { "bytes": fence - vec, "allocs": fa },
        "array_member": { "bytes": member, "allocs": ma },
        "array_member_enabled": { "bytes": callback - vec, "allocs": ca },
        "chain_link": { "bytes": link - vec, "allocs": la },
        "callback": { "bytes": callback - vec, "allocs": ca },
    })
}

fn main() {
    common::setup();
    if common::listing() {
        return;
    }
    let mut result = json!({ "n": N, "floor": floor(), "backends": common::backend_names() });
    for_each_backend!(|B| result[B::NAME] = measure::<B>());
    println!("b9_bytes (live bytes per object, allocations per object; N = {N})");
    for shape in [
        "fence",
        "array_member",
        "array_member_enabled",
        "chain_link",
        "chain_link_enabled",
        "callback",
    ] {
        let cell = |v: &str| match result[v].get(shape) {
            Some(x) => format!(
                "{:>7.1} B {:>5.2} allocs",
                x["bytes"].as_f64().unwrap(),
                x["allocs"].as_f64().unwrap()
            ),
            None => format!("{:>20}", "-"),
        };
        let mut line = format!("  {shape:<22} floor {}", cell("floor"));
        for name in common::backend_names() {
            line += &format!("  {name} {}", cell(name));
        }
        println!("{line}");
    }
    common::write_json("alloc", &result);
}
