//! Error types that fit Rust: `Errno` names and conversions, wait results a caller can `?`,
//! and `add_callback` handing a refused closure back (both backends).

mod common;

use std::cell::Cell;
use std::error::Error;
use std::io;
use std::time::Duration;

use common::{every_backend, timeline};
use rcu_fence::{Backend, Errno, FenceError, Status};

every_backend!(
    refused_callback_comes_back_uncalled,
    refused_driver_fence_is_not_cancelled,
    refused_callback_with_non_sync_captures_goes_into_a_boxed_error,
    waits_report_failure_as_an_error,
    fence_identity_is_eq_and_hash,
);

#[test]
fn errno_display_uses_one_scheme() {
    let mut unnamed = Vec::new();
    for code in 1..=133 {
        let e = Errno::new(-code).unwrap();
        let shown = e.to_string();
        match e.name() {
            Some(name) => {
                assert!(name.starts_with('E'), "{code}: {name}");
                assert_eq!(shown, format!("-{name}"));
            }
            None => {
                assert_eq!(shown, format!("-{code}"));
                unnamed.push(code);
            }
        }
    }
    // Only the two codes Linux leaves unused have no name of their own.
    assert_eq!(unnamed, [41, 58]);
    for (e, name) in [
        (Errno::EPERM, "EPERM"),
        (Errno::EIO, "EIO"),
        (Errno::EAGAIN, "EAGAIN"),
        (Errno::EDEADLK, "EDEADLK"),
        (Errno::ETIME, "ETIME"),
        (Errno::EPROTO, "EPROTO"),
        (Errno::ENOTSUP, "EOPNOTSUPP"),
        (Errno::ETIMEDOUT, "ETIMEDOUT"),
        (Errno::ECANCELED, "ECANCELED"),
        (Errno::new(-133).unwrap(), "EHWPOISON"),
    ] {
        assert_eq!(e.to_string(), format!("-{name}"));
    }
    assert_eq!(Errno::new(-134).unwrap().to_string(), "-134");
    assert_eq!(Errno::new(-4095).unwrap().to_string(), "-4095");
    assert_eq!(
        Status::Error(Errno::ETIME).to_string(),
        "error -ETIME",
        "a status prints its error the same way"
    );
}

#[test]
fn errno_is_an_error_and_an_io_error() {
    fn fails() -> Result<(), Box<dyn Error + Send + Sync>> {
        Err(Errno::EIO)?
    }
    assert_eq!(fails().unwrap_err().to_string(), "-EIO");
    let io: io::Error = Errno::ENOENT.into();
    #[cfg(target_os = "linux")]
    {
        assert_eq!(io.raw_os_error(), Some(2));
        assert_eq!(io.kind(), io::ErrorKind::NotFound);
    }
    let _ = io;
}

#[test]
fn fence_error_into_io_error() {
    let kind = |e: FenceError| io::Error::from(e).kind();
    assert_eq!(kind(FenceError::TimedOut), io::ErrorKind::TimedOut);
    assert_eq!(kind(FenceError::Pending), io::ErrorKind::WouldBlock);
    assert_eq!(kind(FenceError::WouldDeadlock), io::ErrorKind::Deadlock);
    assert_eq!(kind(FenceError::Empty), io::ErrorKind::InvalidInput);
    let failed = io::Error::from(FenceError::Failed(Errno::ETIMEDOUT));
    #[cfg(target_os = "linux")]
    assert_eq!(failed.raw_os_error(), Some(110));
    let _ = failed;
    // The non-OS ones carry the FenceError itself.
    let e = io::Error::from(FenceError::InvalidSeqno);
    assert_eq!(
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<FenceError>()),
        Some(&FenceError::InvalidSeqno)
    );
    assert_eq!(
        FenceError::Failed(Errno::EIO).source().unwrap().to_string(),
        "-EIO"
    );
}

#[test]
fn status_into_result() {
    assert_eq!(Status::Signaled.into_result(), Ok(()));
    assert_eq!(Status::Pending.into_result(), Err(FenceError::Pending));
    assert_eq!(
        Status::Error(Errno::ENODEV).into_result(),
        Err(FenceError::Failed(Errno::ENODEV))
    );
}

fn refused_callback_comes_back_uncalled<B: Backend>() {
    let f = timeline::<B>().fence(1);
    f.signal().unwrap();
    let ran = common::Counter::new();
    let dropped = common::Counter::new();
    let (r, guard) = (ran.clone(), dropped.drop_guard());
    let refused = f
        .add_callback(move |_| {
            let _guard = &guard;
            r.inc();
        })
        .unwrap_err();
    // The usual error uses still work and need nothing of the closure.
    assert_eq!(refused, FenceError::AlreadySignaled);
    assert_eq!(format!("{refused:?}"), "AlreadySignaled(..)");
    assert_eq!(refused.to_string(), FenceError::AlreadySignaled.to_string());
    assert_eq!(dropped.get(), 0, "the closure is handed back, not dropped");
    let callback = refused.into_inner();
    callback(&f);
    assert_eq!((ran.get(), dropped.get()), (1, 1));
    // `?` into FenceError.
    let again = || -> Result<(), FenceError> {
        f.add_callback(|_| ())?;
        Ok(())
    };
    assert_eq!(again(), Err(FenceError::AlreadySignaled));
}

fn refused_driver_fence_is_not_cancelled<B: Backend>() {
    let tl = timeline::<B>();
    let (dep, next) = (tl.fence(1), tl.driver_fence(2));
    let next_done = next.fence();
    dep.signal().unwrap();
    let next = dep
        .add_callback(move |_| next.signal(Ok(())))
        .unwrap_err()
        .into_inner();
    assert_eq!(next_done.status(), Status::Pending, "not cancelled");
    next(&dep);
    assert_eq!(next_done.status(), Status::Signaled);
}

fn refused_callback_with_non_sync_captures_goes_into_a_boxed_error<B: Backend>() {
    let f = timeline::<B>().fence(1);
    f.signal().unwrap();
    let install = || -> Result<(), Box<dyn Error + Send + Sync>> {
        let not_sync = Cell::new(1u32); // Send, not Sync
        f.add_callback(move |_| not_sync.set(2))?;
        Ok(())
    };
    let e = install().unwrap_err();
    assert_eq!(e.to_string(), FenceError::AlreadySignaled.to_string());
}

fn waits_report_failure_as_an_error<B: Backend>() {
    let tl = timeline::<B>();
    let f = tl.fence(1);
    f.set_error(Errno::EIO).unwrap();
    f.signal().unwrap();
    assert_eq!(f.wait(), Err(FenceError::Failed(Errno::EIO)));
    assert_eq!(
        f.wait_timeout(Duration::ZERO),
        Err(FenceError::Failed(Errno::EIO))
    );
    assert_eq!(
        common::block_on(async { (&f).await }),
        Err(FenceError::Failed(Errno::EIO))
    );
    let pending = tl.fence(2);
    assert_eq!(
        pending.wait_timeout(Duration::ZERO),
        Err(FenceError::TimedOut)
    );
    let job = || -> io::Result<()> {
        f.wait()?;
        Ok(())
    };
    #[cfg(target_os = "linux")]
    assert_eq!(job().unwrap_err().raw_os_error(), Some(5));
    let _ = job;
}

// clippy sees the atomics inside a fence; the hash is the address, which never changes.
#[allow(clippy::mutable_key_type)]
fn fence_identity_is_eq_and_hash<B: Backend>() {
    use std::collections::HashSet;
    let tl = timeline::<B>();
    let (a, b) = (tl.fence(1), tl.fence(1));
    assert_eq!(a, a.clone());
    assert_ne!(a, b, "same context and seqno, different fences");
    let set: HashSet<_> = [a.clone(), b.clone(), a.clone()].into_iter().collect();
    assert_eq!(set.len(), 2);
    assert!(set.contains(&b));
}
