//! The fence backends the stress binary runs on: one list, one dispatch.
//!
//! [`ALL`] lists them in the order runs and tables go, the baseline first (the kernel's
//! classic scheme, [`BASELINE`], which every ratio is taken against). [`dispatch`] turns a
//! name from that list into a call of generic code on the backend's type. Adding a backend
//! is one entry in each.
//!
//! What the checks need to know about a backend is a property of its entry ([`Spec`]):
//! whether every guarantee must hold on it, whether its callbacks may use the fence API,
//! whether its locks are recorded, how its chain links complete. Scenarios ask
//! [`of::<B>()`](of), never compare names.

use rcu_fence::{Backend, Locked, LockedRcu, Rcu};

/// What the stress binary knows of one backend.
#[derive(Debug)]
pub(crate) struct Spec {
    /// `Backend::NAME`: the name `--backend` takes and the tables show.
    pub(crate) name: &'static str,
    /// One line for `--list` and the results file.
    pub(crate) about: &'static str,
    /// Every guarantee is enforced: a failure fails the run and is never excused as a
    /// known limit (the scheme under evaluation). Otherwise a failure that follows from
    /// the kernel's rules (a stack overflow on nesting, a lock-class cycle, a lost error)
    /// is reported as a known limit of the scheme.
    pub(crate) strict: bool,
    /// Callbacks run with no lock held, so a callback may signal other fences and add or
    /// remove callbacks, on its own fence too. Where they run under the fence's lock, that
    /// is a self-deadlock or a lock nesting by design, and the scenarios that need it skip.
    pub(crate) unlocked_callbacks: bool,
    /// Takes the fence locks `rcu_fence::lockdep` records: its rows show the dependencies,
    /// cycles and nesting warnings recorded (else `-`).
    pub(crate) recorded_locks: bool,
    /// A chain link signals only after its previous link has signalled. Otherwise (the
    /// kernel's chain) a link signals once every own fence from it back has signalled,
    /// possibly before an older link whose own completion is still queued.
    pub(crate) chain_waits_for_prev_link: bool,
}

/// The name of the baseline every ratio is taken against: the kernel's classic scheme.
pub(crate) const BASELINE: &str = Locked::NAME;

/// Every backend, the baseline first.
pub(crate) const ALL: &[Spec] = &[
    Spec {
        name: Locked::NAME,
        about: "the kernel's classic scheme: callbacks run under the fence's lock, container completion on irq_work, members held until the container's release",
        strict: false,
        unlocked_callbacks: false,
        recorded_locks: true,
        chain_waits_for_prev_link: false,
    },
    Spec {
        name: LockedRcu::NAME,
        about: "the discussion's second proposal alone: the classic fence locking and irq_work, with container members behind RCU, released by the containers' callbacks, container inputs enabled at build time",
        strict: false,
        unlocked_callbacks: false,
        recorded_locks: true,
        chain_waits_for_prev_link: false,
    },
    Spec {
        name: Rcu::NAME,
        about: "the scheme under evaluation: callbacks run with no lock held, container members behind RCU and released as they signal, cascades and drops on a work list",
        strict: true,
        unlocked_callbacks: true,
        recorded_locks: false,
        chain_waits_for_prev_link: true,
    },
];

/// Generic code to run on one backend, chosen by name at run time (see [`dispatch`]).
pub(crate) trait Generic {
    type Output;
    fn call<B: Backend>(self) -> Self::Output;
}

/// Calls `job` on the backend called `name`; `None` if no backend has that name.
pub(crate) fn dispatch<G: Generic>(name: &str, job: G) -> Option<G::Output> {
    match name {
        n if n == Locked::NAME => Some(job.call::<Locked>()),
        n if n == LockedRcu::NAME => Some(job.call::<LockedRcu>()),
        n if n == Rcu::NAME => Some(job.call::<Rcu>()),
        _ => None,
    }
}

/// The entry of the backend called `name`.
pub(crate) fn spec(name: &str) -> Option<&'static Spec> {
    ALL.iter().find(|s| s.name == name)
}

/// The entry of backend `B`.
pub(crate) fn of<B: Backend>() -> &'static Spec {
    spec(B::NAME).unwrap_or_else(|| panic!("backend {} is missing from backends::ALL", B::NAME))
}

/// Parses `--backend`: `all`, or names separated by commas. The result is in the order of
/// [`ALL`], without duplicates.
pub(crate) fn parse(list: &str) -> Result<Vec<&'static Spec>, String> {
    if list.trim() == "all" {
        return Ok(ALL.iter().collect());
    }
    let mut wanted = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let spec = spec(name).ok_or_else(|| {
            let known: Vec<&str> = ALL.iter().map(|s| s.name).collect();
            format!(
                "unknown backend `{name}` (known: {}, or all)",
                known.join(", ")
            )
        })?;
        wanted.push(spec.name);
    }
    if wanted.is_empty() {
        return Err("--backend names no backend".into());
    }
    Ok(ALL.iter().filter(|s| wanted.contains(&s.name)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Name;

    impl Generic for Name {
        type Output = &'static str;
        fn call<B: Backend>(self) -> &'static str {
            B::NAME
        }
    }

    #[test]
    fn every_backend_dispatches_to_itself() {
        for spec in ALL {
            assert_eq!(dispatch(spec.name, Name), Some(spec.name));
        }
        assert_eq!(dispatch("none", Name), None);
        assert!(spec(BASELINE).is_some());
    }

    #[test]
    fn parse_keeps_list_order_and_refuses_unknown_names() {
        let names = |l: &str| parse(l).map(|v| v.iter().map(|s| s.name).collect::<Vec<_>>());
        assert_eq!(names("all").unwrap().len(), ALL.len());
        assert_eq!(names("rcu,locked,rcu").unwrap(), ["locked", "rcu"]);
        assert!(names("nope").is_err());
        assert!(names(",").is_err());
    }
}
