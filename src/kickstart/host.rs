//! What `validate` cannot decide without the target host, said as notes: `install` checks these
//! on the machine, and some kickstarts it refuses there. The wording follows the refusals of
//! the plan stage (`src/plan`), so that `validate` and `install` tell the same story.

use super::diag::{Diagnostic, Severity, Span};
use super::model::{Action, ActionKind, DiskTarget, Kickstart};

/// Why `install` refuses `upgrade`, as the plan stage says it.
pub const UPGRADE_REFUSED: &str =
    "upgrade is not supported yet: ksinstall does fresh installs only";

const PREFIX: &str = "checked without a host: `install` will also";

fn note(span: &Span, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Note,
        span: span.clone(),
        message: format!("{PREFIX} {message}"),
        help: None,
        lint: false,
    }
}

fn action_notes(a: &Action, out: &mut Vec<Diagnostic>) {
    if a.kind == ActionKind::Upgrade {
        // Refused whatever the host holds; nothing else about it matters.
        out.push(note(
            &a.span,
            format!("refuse `upgrade`: {UPGRADE_REFUSED}"),
        ));
        return;
    }
    if a.kind == ActionKind::InstallOrUpgrade {
        out.push(note(&a.span, "check the disk it picks: if it holds an ESXi install, `install` refuses (upgrade is not supported yet); if not, this is a fresh install".into()));
    }
    let vmfs = if a.overwrite_vmfs || a.preserve_vmfs {
        ""
    } else {
        ", and refuse it if it may hold a VMFS datastore (no --overwritevmfs)"
    };
    match &a.target {
        Some(DiskTarget::FirstDisk(filters)) => out.push(note(
            &a.span,
            format!(
                "check which disk `--firstdisk={}` picks{vmfs}",
                filters.join(",")
            ),
        )),
        Some(DiskTarget::Disk(d)) => out.push(note(
            &a.span,
            format!("check that disk \"{d}\" exists{vmfs}"),
        )),
        None => {}
    }
    for slot in &a.dpu_pci_slots {
        out.push(note(
            &a.span,
            format!("check that PCIe slot \"{slot}\" holds a supported DPU"),
        ));
    }
}

/// The notes for a kickstart that read without error, in no particular order.
pub fn notes(ks: &Kickstart) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let Some(a) = &ks.action {
        action_notes(a, &mut out);
    }
    for p in &ks.pending_includes {
        let how = if p.target.contains("://") {
            "fetch"
        } else {
            "read"
        };
        out.push(note(
            &p.span,
            format!(
                "{how} \"{}\" once the %pre scripts ran, check the commands it holds, and refuse the kickstart if it cannot be read",
                crate::http::redact(&p.target)
            ),
        ));
    }
    out
}
