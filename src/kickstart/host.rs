//! What `validate` cannot decide without the target host, said as notes: `install` checks these
//! on the machine, and some kickstarts it refuses there. The wording follows the refusals of
//! the plan stage (`src/plan`), so that `validate` and `install` tell the same story.

use super::diag::{Diagnostic, Severity, Span};
use super::model::{Action, ActionKind, DiskTarget, Kickstart};

/// What `install` checks before an upgrade, as the plan stage does (docs/UPGRADE.md).
pub const UPGRADE_CHECKS: &str = "check that the disk it picks holds ESXi 7.0 or later it can upgrade (partitions 1, 5, 6, 7, a bank that boots), that the media's build is newer, and that every installed VIB is in the new image";

const PREFIX: &str = "checked without a host: `install` will also";

fn note(span: &Span, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Note,
        span: span.clone(),
        message: format!("{PREFIX} {message}"),
        help: None,
        lint: false,
        option: None,
    }
}

fn action_notes(a: &Action, out: &mut Vec<Diagnostic>) {
    if a.kind == ActionKind::Upgrade {
        out.push(note(&a.span, UPGRADE_CHECKS.into()));
        return;
    }
    if a.kind == ActionKind::InstallOrUpgrade {
        out.push(note(&a.span, "check the disk it picks: where it holds an ESXi it can upgrade, `install` upgrades it; where it holds none, this is a fresh install; an ESXi it cannot upgrade is refused".into()));
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
    if let Some(d) = &a.system_disk {
        out.push(note(
            &a.span,
            format!("check that --systemdisk disk \"{d}\" exists (refused if not); ESX-OSData is not written to it (docs/LAYOUT.md)"),
        ));
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
    for c in &ks.clearpart {
        use super::model::ClearTarget as T;
        let which = match &c.target {
            T::Drives(d) => format!("the disks {}", d.join(", ")),
            T::AllDrives => "every disk but the installer's own media".into(),
            T::IgnoreDrives(d) => {
                format!("every disk but {} and the installer's media", d.join(", "))
            }
            T::FirstDisk(f) => format!("the disk `--firstdisk={}` picks", f.join(",")),
        };
        let vmfs = if c.overwrite_vmfs {
            ""
        } else {
            ", and refuse a disk holding VMFS (no --overwritevmfs)"
        };
        out.push(note(
            &c.span,
            format!("clear {which}: their partition tables and partition heads are zeroed before the install disk is partitioned{vmfs}"),
        ));
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
