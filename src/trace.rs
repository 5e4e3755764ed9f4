//! Trace events where the kernel has tracepoints (cargo feature `tracing`).
//!
//! With the feature on, [`event!`] emits a [`tracing`](https://docs.rs/tracing) event at
//! level `TRACE`, target `rcu_fence`, named after the point, with the fence's `context` and
//! `seqno` (and, given a fence, its `driver` and `timeline` names) as fields, plus the
//! point's own fields. With the feature off it expands to nothing: its arguments are not
//! even evaluated, so the library's code is the same as without the calls.
//!
//! The events:
//!
//! | name | where | extra fields |
//! | --- | --- | --- |
//! | `fence_init` | a fence is built (`dma_fence_init`) | |
//! | `fence_enable_signal` | the `enable_signaling` hook is about to run (once per fence; plain timeline fences have no hook and never report it) | |
//! | `fence_signaled` | the fence is marked signalled, before its callbacks run | `error` (0 if none) |
//! | `fence_callback_added` | `add_callback` installed a callback | |
//! | `fence_callback_removed` | `remove_callback` is called for one of the fence's callbacks | |
//! | `fence_callback_run` | a callback is about to run | |
//! | `fence_wait_start`, `fence_wait_end` | a blocking wait parks (not one that finds the fence signalled) | `signaled` (end) |
//! | `container_member_signaled` | an array member or a chain input has completed (its fence is the container) | `member_context`, `member_seqno`, `index` (array) or `own` (chain: the link's own fence, else `prev`) |

/// Emits one trace event (feature `tracing`), or nothing.
///
/// Forms:
/// - `event!("name", fence_expr, field = value, ...)`: context, seqno, driver and timeline
///   from the fence (`&Fence<B>`), evaluated once;
/// - `event!("name"; context, seqno, field = value, ...)`: context and seqno given directly;
/// - `event!(if condition, ...)`: either of the above, only when `condition` holds.
#[cfg(feature = "tracing")]
macro_rules! event {
    (if $cond:expr, $($rest:tt)*) => {
        if $cond {
            $crate::trace::event!($($rest)*);
        }
    };
    ($name:literal; $context:expr, $seqno:expr $(, $field:ident = $value:expr)* $(,)?) => {
        ::tracing::event!(
            name: $name,
            target: "rcu_fence",
            ::tracing::Level::TRACE,
            context = $context,
            seqno = $seqno,
            $($field = $value,)*
            $name
        )
    };
    ($name:literal, $fence:expr $(, $field:ident = $value:expr)* $(,)?) => {{
        let fence = $fence;
        ::tracing::event!(
            name: $name,
            target: "rcu_fence",
            ::tracing::Level::TRACE,
            context = fence.context(),
            seqno = fence.seqno(),
            driver = fence.driver_name(),
            timeline = fence.timeline_name(),
            $($field = $value,)*
            $name
        )
    }};
}

/// `fence_signaled` for `fence`, with its error (0 if none) as `error`.
#[cfg(feature = "tracing")]
macro_rules! signaled {
    ($fence:expr) => {{
        let fence = $fence;
        $crate::trace::event!(
            "fence_signaled",
            fence,
            error = fence.error().map_or(0, |e| e.get())
        );
    }};
}

/// `container_member_signaled` for `container`, with `member`'s context and seqno as
/// `member_context` and `member_seqno`; the same `if condition,` prefix as [`event!`].
#[cfg(feature = "tracing")]
macro_rules! member {
    (if $cond:expr, $($rest:tt)*) => {
        if $cond {
            $crate::trace::member!($($rest)*);
        }
    };
    ($container:expr, $member:expr $(, $field:ident = $value:expr)* $(,)?) => {{
        let member = $member;
        $crate::trace::event!(
            "container_member_signaled",
            $container,
            member_context = member.context(),
            member_seqno = member.seqno()
            $(, $field = $value)*
        );
    }};
}

/// Emits one trace event (feature `tracing`), or nothing: without the feature this expands
/// to nothing and its arguments are not evaluated.
#[cfg(not(feature = "tracing"))]
macro_rules! event {
    ($($anything:tt)*) => {};
}

/// `fence_signaled` (feature `tracing`), or nothing.
#[cfg(not(feature = "tracing"))]
macro_rules! signaled {
    ($($anything:tt)*) => {};
}

/// `container_member_signaled` (feature `tracing`), or nothing.
#[cfg(not(feature = "tracing"))]
macro_rules! member {
    ($($anything:tt)*) => {};
}

pub(crate) use {event, member, signaled};
