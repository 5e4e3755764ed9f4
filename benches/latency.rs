//! B3 (cross-thread signal → a blocked waiter wakes) and B4 (signal → `.await` resumes):
//! every sample recorded in an `hdrhistogram`, p50/p99/p99.9 printed per variant, and the
//! samples' percentiles and CDF written for the report.
//!
//! Each sample: the signalling thread hands a fresh event to a waiter thread (untimed),
//! waits until the waiter is about to block and then 200 µs more so that it is asleep in
//! the kernel, reads the clock, signals, and reads the clock again (the cost of the
//! signalling call). The waiter reads the clock as soon as it returns. Variants are
//! interleaved sample by sample, and the samples are also cut into `BLOCKS` consecutive
//! blocks (rounds) whose medians the report uses for the run-to-run spread of each ratio.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::task::{Context, Poll};
use std::thread::Thread;
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use common::condvar::LockCondvar;
use common::{CondvarFence, ParkingLot, StdSync, for_each_backend};
use hdrhistogram::Histogram;
use rcu_fence::{Backend, Fence, Timeline};
use serde_json::{Value, json};

/// How long the signaller lets the waiter sleep before signalling.
const SETTLE: Duration = Duration::from_micros(200);
/// The consecutive blocks the samples are cut into for the spread across rounds.
const BLOCKS: usize = 10;

/// A one-shot event a thread blocks on (B3).
trait Blocking: Send + Sync + 'static {
    /// A fresh, pending event.
    fn new() -> Self;
    /// Blocks until signalled.
    fn wait(&self);
    /// Signals it.
    fn signal(&self);
}

/// The floor: a flag and `thread::park`/`unpark`.
struct Park {
    flag: AtomicBool,
    waiter: OnceLock<Thread>,
}

impl Blocking for Park {
    fn new() -> Self {
        Park {
            flag: AtomicBool::new(false),
            waiter: OnceLock::new(),
        }
    }
    fn wait(&self) {
        self.waiter.set(std::thread::current()).expect("one waiter");
        while !self.flag.load(Ordering::Acquire) {
            std::thread::park();
        }
    }
    fn signal(&self) {
        self.flag.store(true, Ordering::Release);
        // The waiter registers itself right after it reports ready, long before this runs.
        loop {
            if let Some(t) = self.waiter.get() {
                return t.unpark();
            }
            std::hint::spin_loop();
        }
    }
}

impl<L: LockCondvar> Blocking for CondvarFence<L> {
    fn new() -> Self {
        CondvarFence::new()
    }
    fn wait(&self) {
        CondvarFence::wait(self);
    }
    fn signal(&self) {
        CondvarFence::signal(self);
    }
}

/// `event-listener`: a flag and an `Event`, the crate's documented pattern.
struct Listener {
    flag: AtomicBool,
    event: event_listener::Event,
}

impl Blocking for Listener {
    fn new() -> Self {
        Listener {
            flag: AtomicBool::new(false),
            event: event_listener::Event::new(),
        }
    }
    fn wait(&self) {
        loop {
            if self.flag.load(Ordering::Acquire) {
                return;
            }
            let listener = self.event.listen();
            if self.flag.load(Ordering::Acquire) {
                return;
            }
            event_listener::Listener::wait(listener);
        }
    }
    fn signal(&self) {
        self.flag.store(true, Ordering::Release);
        self.event.notify(usize::MAX);
    }
}

/// A fence of backend `B`.
struct FenceEvent<B: Backend>(Fence<B>);

impl<B: Backend> Blocking for FenceEvent<B> {
    fn new() -> Self {
        fresh_fence::<B>()
    }
    fn wait(&self) {
        let _ = self.0.wait();
    }
    fn signal(&self) {
        self.0.signal().unwrap();
    }
}

fn fresh_fence<B: Backend>() -> FenceEvent<B> {
    FenceEvent(Timeline::new_in("latency", B::default()).fence(1))
}

/// A one-shot event a task awaits (B4).
trait Awaitable: Send + Sync + 'static {
    /// A fresh, pending event.
    fn new() -> Self;
    /// Signals it.
    fn signal(&self);
    /// Resolves once signalled.
    fn wait(&self) -> impl Future<Output = ()> + '_;
}

/// The floor: a flag and one `AtomicWaker`.
struct BareWaker {
    flag: AtomicBool,
    waker: AtomicWaker,
}

struct BareWait<'a>(&'a BareWaker);

impl Future for BareWait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.flag.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.0.waker.register(cx.waker());
        if self.0.flag.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Awaitable for BareWaker {
    fn new() -> Self {
        BareWaker {
            flag: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }
    fn signal(&self) {
        self.flag.store(true, Ordering::Release);
        self.waker.wake();
    }
    fn wait(&self) -> impl Future<Output = ()> + '_ {
        BareWait(self)
    }
}

impl Awaitable for tokio::sync::Notify {
    fn new() -> Self {
        tokio::sync::Notify::new()
    }
    fn signal(&self) {
        self.notify_one();
    }
    fn wait(&self) -> impl Future<Output = ()> + '_ {
        self.notified()
    }
}

/// `futures::channel::oneshot`.
struct Oneshot {
    tx: Mutex<Option<futures::channel::oneshot::Sender<()>>>,
    rx: Mutex<Option<futures::channel::oneshot::Receiver<()>>>,
}

impl Awaitable for Oneshot {
    fn new() -> Self {
        let (tx, rx) = futures::channel::oneshot::channel();
        Oneshot {
            tx: Mutex::new(Some(tx)),
            rx: Mutex::new(Some(rx)),
        }
    }
    fn signal(&self) {
        self.tx.lock().unwrap().take().unwrap().send(()).unwrap();
    }
    fn wait(&self) -> impl Future<Output = ()> + '_ {
        let rx = self.rx.lock().unwrap().take().unwrap();
        async move {
            rx.await.unwrap();
        }
    }
}

impl<B: Backend> Awaitable for FenceEvent<B> {
    fn new() -> Self {
        fresh_fence::<B>()
    }
    fn signal(&self) {
        self.0.signal().unwrap();
    }
    fn wait(&self) -> impl Future<Output = ()> + '_ {
        let fence = &self.0;
        async move {
            let _ = fence.await;
        }
    }
}

/// The executor a B4 waiter runs.
#[derive(Clone, Copy)]
enum Executor {
    /// `futures::executor::block_on`: one thread, parks while pending.
    BlockOn,
    /// A tokio current-thread runtime.
    Tokio,
}

/// Two histograms per variant: wake latency and the signalling call.
struct Series {
    name: String,
    wake: Histogram<u64>,
    call: Histogram<u64>,
    wake_samples: Vec<u64>,
    call_samples: Vec<u64>,
}

impl Series {
    fn new(name: String) -> Self {
        let h = || Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
        Series {
            name,
            wake: h(),
            call: h(),
            wake_samples: Vec::new(),
            call_samples: Vec::new(),
        }
    }

    fn record(&mut self, wake: Duration, call: Duration) {
        let (w, c) = (wake.as_nanos().max(1) as u64, call.as_nanos().max(1) as u64);
        self.wake.saturating_record(w);
        self.call.saturating_record(c);
        self.wake_samples.push(w);
        self.call_samples.push(c);
    }

    fn json(&mut self) -> Value {
        let blocks = |samples: &[u64]| -> Vec<u64> {
            let per = samples.len().div_ceil(BLOCKS).max(1);
            samples
                .chunks(per)
                .map(|c| {
                    let mut c = c.to_vec();
                    c.sort_unstable();
                    c[c.len() / 2]
                })
                .collect()
        };
        let (wake_blocks, call_blocks) = (blocks(&self.wake_samples), blocks(&self.call_samples));
        self.wake_samples.sort_unstable();
        let n = self.wake_samples.len();
        // The CDF, thinned to at most 400 points.
        let step = (n / 400).max(1);
        let cdf: Vec<Value> = (0..n)
            .step_by(step)
            .chain(std::iter::once(n - 1))
            .map(|i| json!([self.wake_samples[i], (i + 1) as f64 / n as f64]))
            .collect();
        let q = |h: &Histogram<u64>| {
            json!({ "p50": h.value_at_quantile(0.5), "p99": h.value_at_quantile(0.99), "p999": h.value_at_quantile(0.999),
                    "min": h.min(), "max": h.max(), "mean": h.mean(), "count": h.len() })
        };
        json!({ "name": self.name, "wake_ns": q(&self.wake), "call_ns": q(&self.call), "cdf": cdf,
                "wake_p50_blocks": wake_blocks, "call_p50_blocks": call_blocks })
    }

    fn print(&self) {
        let us = |v: u64| v as f64 / 1_000.0;
        println!(
            "  {:<28} wake p50 {:>8.2} µs  p99 {:>8.2} µs  p99.9 {:>8.2} µs | signal call p50 {:>6.2} µs  p99 {:>6.2} µs  (n = {})",
            self.name,
            us(self.wake.value_at_quantile(0.5)),
            us(self.wake.value_at_quantile(0.99)),
            us(self.wake.value_at_quantile(0.999)),
            us(self.call.value_at_quantile(0.5)),
            us(self.call.value_at_quantile(0.99)),
            self.wake.len()
        );
    }
}

/// A waiter thread that takes events one at a time; `sample` runs one timed round.
struct Waiter<E> {
    events: mpsc::Sender<Option<Arc<E>>>,
    woke: mpsc::Receiver<Instant>,
    ready: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<E: Send + Sync + 'static> Waiter<E> {
    /// Starts a waiter whose `block` waits for one event and returns when it resumed.
    fn start(block: impl Fn(&E, &AtomicBool) -> Instant + Send + 'static) -> Self {
        let (events, rx) = mpsc::channel::<Option<Arc<E>>>();
        let (tx, woke) = mpsc::channel();
        let ready = Arc::new(AtomicBool::new(false));
        let flag = ready.clone();
        let thread = std::thread::spawn(move || {
            while let Ok(Some(event)) = rx.recv() {
                let at = block(&event, &flag);
                tx.send(at).unwrap();
            }
        });
        Waiter {
            events,
            woke,
            ready,
            thread: Some(thread),
        }
    }

    fn sample(&self, event: E, signal: impl FnOnce(&E)) -> (Duration, Duration) {
        let event = Arc::new(event);
        self.ready.store(false, Ordering::SeqCst);
        self.events.send(Some(event.clone())).unwrap();
        while !self.ready.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        std::thread::sleep(SETTLE);
        let start = Instant::now();
        signal(&event);
        let call = start.elapsed();
        let woke = self.woke.recv().unwrap();
        (woke.saturating_duration_since(start), call)
    }
}

impl<E> Drop for Waiter<E> {
    fn drop(&mut self) {
        let _ = self.events.send(None);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One B3 variant: its waiter thread and its series.
trait Variant {
    fn sample(&mut self);
    fn series(&mut self) -> &mut Series;
}

struct BlockingVariant<E: Blocking> {
    waiter: Waiter<E>,
    series: Series,
}

impl<E: Blocking> BlockingVariant<E> {
    fn new(name: &str) -> Self {
        let waiter = Waiter::start(|e: &E, ready: &AtomicBool| {
            ready.store(true, Ordering::SeqCst);
            e.wait();
            Instant::now()
        });
        BlockingVariant {
            waiter,
            series: Series::new(name.to_string()),
        }
    }
}

impl<E: Blocking> Variant for BlockingVariant<E> {
    fn sample(&mut self) {
        let (wake, call) = self.waiter.sample(E::new(), E::signal);
        self.series.record(wake, call);
    }
    fn series(&mut self) -> &mut Series {
        &mut self.series
    }
}

struct AsyncVariant<E: Awaitable> {
    waiter: Waiter<E>,
    series: Series,
}

impl<E: Awaitable> AsyncVariant<E> {
    fn new(name: &str, executor: Executor) -> Self {
        let block = move |e: &E, ready: &AtomicBool| {
            let task = async {
                ready.store(true, Ordering::SeqCst);
                e.wait().await;
                Instant::now()
            };
            match executor {
                Executor::BlockOn => futures::executor::block_on(task),
                Executor::Tokio => TOKIO.with(|rt| rt.block_on(task)),
            }
        };
        let suffix = match executor {
            Executor::BlockOn => "block_on",
            Executor::Tokio => "tokio",
        };
        AsyncVariant {
            waiter: Waiter::start(block),
            series: Series::new(format!("{name}/{suffix}")),
        }
    }
}

thread_local! {
    static TOKIO: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
}

impl<E: Awaitable> Variant for AsyncVariant<E> {
    fn sample(&mut self) {
        let (wake, call) = self.waiter.sample(E::new(), E::signal);
        self.series.record(wake, call);
    }
    fn series(&mut self) -> &mut Series {
        &mut self.series
    }
}

/// Runs `samples` interleaved rounds over `variants`, prints and returns their results.
fn run(title: &str, samples: usize, variants: &mut [Box<dyn Variant>]) -> Value {
    for _ in 0..samples / 20 + 1 {
        for v in variants.iter_mut() {
            v.sample(); // warm-up, discarded below
        }
    }
    for v in variants.iter_mut() {
        let name = v.series().name.clone();
        *v.series() = Series::new(name);
    }
    for _ in 0..samples {
        for v in variants.iter_mut() {
            v.sample();
        }
    }
    println!("{title}");
    for v in variants.iter_mut() {
        v.series().print();
    }
    Value::Array(variants.iter_mut().map(|v| v.series().json()).collect())
}

fn main() {
    common::setup();
    if common::listing() {
        return; // `cargo bench -- --list` asks every target for its benchmarks
    }
    let samples = if common::quick() { 300 } else { 3_000 };
    let mut b3: Vec<Box<dyn Variant>> = vec![Box::new(BlockingVariant::<Park>::new("floor"))];
    for_each_backend!(|B| b3.push(Box::new(BlockingVariant::<FenceEvent<B>>::new(B::NAME))));
    b3.push(Box::new(BlockingVariant::<CondvarFence<StdSync>>::new(
        StdSync::NAME,
    )));
    b3.push(Box::new(BlockingVariant::<CondvarFence<ParkingLot>>::new(
        ParkingLot::NAME,
    )));
    b3.push(Box::new(BlockingVariant::<Listener>::new("event_listener")));
    let b3 = run("b3_wake (blocked thread)", samples, &mut b3);
    let mut b4: Vec<Box<dyn Variant>> = Vec::new();
    for executor in [Executor::BlockOn, Executor::Tokio] {
        b4.push(Box::new(AsyncVariant::<BareWaker>::new("floor", executor)));
        for_each_backend!(|B| b4.push(Box::new(AsyncVariant::<FenceEvent<B>>::new(
            B::NAME,
            executor
        ))));
        b4.push(Box::new(AsyncVariant::<tokio::sync::Notify>::new(
            "tokio_notify",
            executor,
        )));
        b4.push(Box::new(AsyncVariant::<Oneshot>::new(
            "futures_oneshot",
            executor,
        )));
    }
    let b4 = run(
        "b4_await (task on a single-thread executor)",
        samples,
        &mut b4,
    );
    common::write_json(
        "latency",
        &json!({ "samples": samples, "blocks": BLOCKS, "settle_us": SETTLE.as_micros() as u64, "b3": b3, "b4": b4 }),
    );
}
