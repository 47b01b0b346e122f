//! The action command (`install`, `upgrade`, `installorupgrade`) and the disk commands
//! (`clearpart`, `part`).

use super::shared::{needs, split_list};
use crate::kickstart::args::Args;
use crate::kickstart::diag::{Sink, Span};
use crate::kickstart::model::*;

pub(super) fn action(name: &str, a: &Args, span: Span, sink: &mut Sink) -> Option<Action> {
    let kind = match name {
        "install" => ActionKind::Install,
        "upgrade" => ActionKind::Upgrade,
        _ => ActionKind::InstallOrUpgrade,
    };
    let mut act = Action::new(kind, span.clone());
    act.target = match (a.value("disk"), a.value("firstdisk")) {
        (Some(d), _) => Some(DiskTarget::Disk(d.to_string())),
        (None, Some(f)) => Some(DiskTarget::FirstDisk(split_list(f, true))),
        (None, None) => {
            // ESXi cannot pick a disk without one of them; refusing here is the safe choice.
            needs(
                a,
                &["disk", "firstdisk"],
                &span,
                &format!("{name} needs --disk (or --drive) or --firstdisk"),
                &format!("e.g. `{name} --firstdisk --overwritevmfs`"),
                sink,
            );
            None
        }
    };
    // `--ignoressd` with `--disk` is refused by the grammar's exclusive pairs; with no disk
    // option at all, the missing disk is the one problem, reported above.
    act.ignore_ssd = a.has("ignoressd");
    act.overwrite_vmfs = a.has("overwritevmfs");
    act.preserve_vmfs = a.has("preservevmfs");
    act.no_vmfs_on_disk = a.has("novmfsondisk");
    act.overwrite_vsan = a.has("overwritevsan");
    act.ignore_prereq_warnings = a.has("ignoreprereqwarnings");
    act.ignore_prereq_errors = a.has("ignoreprereqerrors");
    act.force_unsupported_install = a.has("forceunsupportedinstall");
    act.force_migrate = a.has("forcemigrate");
    act.system_disk = a.value("systemdisk").map(str::to_string);
    act.repartition_system_disk = a.has("repartitionsystemdisk");
    act.delete_cos_vmdk = a.has("deletecosvmdk");
    act.disk_booted_from = a.has("diskBootedFrom");
    act.save_bootbank = a.value("savebootbank").map(str::to_string);
    if let Some(o) = a.get("dpuPciSlots") {
        let slots = split_list(o.value.as_deref().unwrap_or(""), false);
        if slots.len() > 1 {
            sink.error_help(
                &o.span,
                format!(
                    "--dpuPciSlots names {} slots; ESXi 8 supports at most one DPU per host",
                    slots.len()
                ),
                "name the one slot that holds the DPU",
            );
        }
        if let Some(bad) = slots.iter().find(|s| {
            !s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c))
        }) {
            sink.error(
                &o.span,
                format!("--dpuPciSlots value \"{bad}\" is not a PCIe slot id"),
            );
        }
        act.dpu_pci_slots = slots;
    }
    if let (Some(o), false) = (a.get("repartitionsystemdisk"), a.has("systemdisk")) {
        sink.lint(
            &o.span,
            "\"--repartitionsystemdisk\" has no effect without \"--systemdisk\"",
            None,
        );
    }
    Some(act)
}

pub(super) fn clearpart(a: &Args, span: Span) -> Option<ClearPart> {
    let target = if let Some(v) = a.value("drives") {
        ClearTarget::Drives(split_list(v, false))
    } else if a.has("alldrives") {
        ClearTarget::AllDrives
    } else if let Some(v) = a.value("ignoredrives") {
        ClearTarget::IgnoreDrives(split_list(v, false))
    } else if let Some(v) = a.value("firstdisk") {
        ClearTarget::FirstDisk(split_list(v, true))
    } else {
        return None;
    };
    Some(ClearPart {
        target,
        overwrite_vmfs: a.has("overwritevmfs"),
        span,
    })
}

pub(super) fn part(a: &Args, span: Span, sink: &mut Sink) -> Option<Part> {
    let name = a.positional.as_ref()?;
    let n = &name.text;
    if n.is_empty() || n.contains('/') || n.starts_with(' ') || n.ends_with(' ') {
        sink.error(&name.span, format!("datastore name \"{n}\" is not valid: it must not be empty, contain `/`, or start or end with a space"));
        return None;
    }
    let target = match (a.value("ondisk"), a.value("onfirstdisk")) {
        (Some(d), _) => DiskTarget::Disk(d.to_string()),
        (None, Some(f)) => DiskTarget::FirstDisk(split_list(f, true)),
        (None, None) => {
            needs(
                a,
                &["ondisk", "onfirstdisk"],
                &span,
                "part needs --ondisk (or --ondrive) or --onfirstdisk",
                "e.g. `part datastore2 --ondisk=naa.xxxx`",
                sink,
            );
            return None;
        }
    };
    Some(Part {
        datastore: n.clone(),
        target,
        span,
    })
}
