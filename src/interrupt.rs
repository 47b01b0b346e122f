//! SIGINT, SIGTERM and SIGHUP during a run (Ctrl-C, `systemctl stop`, a closed SSH session).
//!
//! The first of them is only remembered: the run stops at its next safe point (between two
//! chunks of a hash or a copy, between two files, while waiting for a DPU, between two stages),
//! says `interrupted` in its `failed` event and its report, and exits with
//! [`Outcome::Interrupted`](crate::exit::Outcome). A second one ends the process at once, by the
//! signal's default action, for a run stuck where no safe point comes (a DSC flash the kernel
//! will not cancel). signal-hook does the async-signal-safe part: its handlers only store to
//! atomics.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The signal that arrived first, or 0.
static FIRST: AtomicI32 = AtomicI32::new(0);

/// The run was interrupted by a signal; the error that carries it to the step that stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted by {}", name(*.0))]
pub struct Interrupted(pub i32);

/// The signal's name as users know it.
pub fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Take SIGINT, SIGTERM and SIGHUP from now on (see the module comment). Called once by the
/// commands that write to disks.
pub fn install() -> std::io::Result<()> {
    let seen = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        // Registered first, so it sees the flag as it was before this signal.
        signal_hook::flag::register_conditional_default(signal, Arc::clone(&seen))?;
        signal_hook::flag::register(signal, Arc::clone(&seen))?;
        // SAFETY: the action only does an atomic compare-and-swap, which is async-signal-safe.
        unsafe {
            signal_hook::low_level::register(signal, move || {
                let _ = FIRST.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
            })?;
        }
    }
    Ok(())
}

/// The signal that asked the run to stop, if one did.
pub fn pending() -> Option<Interrupted> {
    match FIRST.load(Ordering::SeqCst) {
        0 => None,
        s => Some(Interrupted(s)),
    }
}

/// A safe point: `Err` once a signal asked the run to stop.
pub fn check() -> Result<(), Interrupted> {
    pending().map_or(Ok(()), Err)
}
