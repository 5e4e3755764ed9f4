//! The common types and the constructor traits in one import, for code that is generic over
//! the backend or picks it with one type alias.
//!
//! ```
//! use rcu_fence::prelude::*;
//!
//! type Bk = Locked; // switch the whole program's scheme here
//!
//! let gpu = Timeline::<Bk>::new("gpu");
//! let points = Syncobj::<Bk>::new();
//! let job = gpu.driver_fence(1);
//! points.add_point(job.fence(), 1);
//! let deps = FenceArray::all(vec![job.fence(), stub::<Bk>()]).unwrap();
//! let backend = Bk::default(); // the value `*_in` constructors take
//! let other = Timeline::new_in("copy", backend);
//! job.signal(Ok(()));
//! assert_eq!(deps.wait(), Ok(()));
//! assert!(other.fence(1).is_later(&other.fence(0)));
//! ```
//!
//! [`TimelineNew`] and [`SyncobjNew`] give `Timeline::<B>::new(..)` and
//! `Syncobj::<B>::new()` for every backend; unannotated `Timeline::new(..)` and
//! `Syncobj::new()` keep meaning the default [`Rcu`].

pub use crate::backend::{Backend, Locked, LockedRcu, Rcu};
pub use crate::context::{Timeline, TimelineNew};
pub use crate::driver::DriverFence;
pub use crate::error::{Errno, FenceError, Status};
pub use crate::fence::{Fence, FenceOps, stub};
pub use crate::syncobj::{Syncobj, SyncobjNew};
pub use crate::{FenceArray, FenceChain, merge};
