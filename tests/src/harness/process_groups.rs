//! Whether the processes the harness starts get process groups of their own. A driver binary
//! asks for it ([`crate::drivers::children::supervise`]): Ctrl-C at a terminal then reaches the
//! driver alone, which ends its children itself (frozen ones too, which a gentle signal would
//! not move). A test never asks: its children stay in its group, as cargo test expects.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by [`give_own_groups`]: this process is a driver binary.
static OWN_GROUPS: AtomicBool = AtomicBool::new(false);

/// From now on, every process the harness starts runs in a process group of its own.
pub(crate) fn give_own_groups() {
    OWN_GROUPS.store(true, Ordering::SeqCst);
}

/// Puts `cmd`'s process in a process group of its own when this process is a driver.
pub(crate) fn own_group(cmd: &mut Command) {
    if OWN_GROUPS.load(Ordering::SeqCst) {
        cmd.process_group(0);
    }
}
