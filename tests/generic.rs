//! Code generic over the backend, and code that picks it with one type alias: every
//! constructor is reachable for every backend through `rcu_fence::prelude`, while the
//! unannotated constructors keep meaning `Rcu`.

use std::any::TypeId;

use rcu_fence::prelude::*;

fn backend_of<B: Backend>(_: &Timeline<B>) -> &'static str {
    B::NAME
}

#[test]
fn unannotated_constructors_stay_rcu() {
    let tl = Timeline::new("gpu");
    assert_eq!(backend_of(&tl), Rcu::NAME);
    let obj = Syncobj::new();
    obj.add_point(tl.fence(1), 1);
    fn is_rcu<B: Backend>(_: &Syncobj<B>) -> bool {
        TypeId::of::<B>() == TypeId::of::<Rcu>()
    }
    assert!(is_rcu(&obj));
}

#[test]
fn a_type_alias_switches_every_constructor() {
    type Bk = Locked;
    let tl = Timeline::<Bk>::new("gpu");
    assert_eq!(backend_of(&tl), Locked::NAME);
    let other = Timeline::new_in("copy", Bk::default());
    assert_eq!(backend_of(&other), Locked::NAME);
    let obj = Syncobj::<Bk>::new();
    let obj2 = Syncobj::<Bk>::default();
    let obj3: Syncobj<Bk> = Syncobj::new_in(Bk::default());
    let s: Fence<Bk> = stub();
    assert!(s.ptr_eq(&stub::<Bk>()));
    let f = tl.fence(1);
    for o in [&obj, &obj2, &obj3] {
        o.add_point(f.clone(), 1);
    }
    let all = FenceArray::all([f.clone(), s]).unwrap();
    f.signal().unwrap();
    assert_eq!(all.wait(), Ok(()));
}

/// A generic pipeline step, instantiated on both backends.
fn pipeline<B: Backend>() -> Result<(), FenceError> {
    let tl = Timeline::<B>::new("ring");
    let obj = Syncobj::<B>::default();
    let jobs: Vec<DriverFence<B>> = (1..=3).map(|s| tl.driver_fence(s)).collect();
    for (i, j) in jobs.iter().enumerate() {
        obj.add_point(j.fence(), i as u64 + 1);
    }
    let last = obj.find_fence(3)?;
    for j in jobs {
        j.signal(Ok(()));
    }
    last.wait_timeout(std::time::Duration::from_secs(30))
}

#[test]
fn generic_code_runs_on_every_backend() {
    assert_eq!(pipeline::<Rcu>(), Ok(()));
    assert_eq!(pipeline::<Locked>(), Ok(()));
    assert_eq!(pipeline::<LockedRcu>(), Ok(()));
}
