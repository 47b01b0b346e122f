//! The confirmation: what is erased, what is kept, what is written.

use super::*;

pub(super) fn role_name(r: Role) -> &'static str {
    match r {
        Role::SystemBoot => "EFI system",
        Role::BootBank0 => "boot bank 0",
        Role::BootBank1 => "boot bank 1",
        Role::OsData => "ESX-OSData",
        Role::Datastore => "VMFS datastore",
    }
}

/// The confirmation's text: what is erased, what is kept, what is written.
pub fn confirm_lines(app: &App) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let p = match &app.planned {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            lines.push(Line::styled("The install cannot go ahead:", ERROR));
            lines.push(Line::styled(e.message.clone(), ERROR));
            lines.push(Line::raw(""));
            lines.push(Line::raw("Press Esc to go back and change your answers."));
            return lines;
        }
        None => return lines,
    };
    let plan = &p.plan;
    if plan.upgrade.is_some() {
        // The same words as the scripted path's --dry-run: which bank boots, which is written,
        // what is carried over and what is never touched.
        lines.extend(plan.text().lines().map(|l| Line::raw(l.to_string())));
        return lines;
    }
    let t = &plan.target;
    let disk = app.chosen_disk();
    let kernel = disk.map(|d| d.kernel_name.clone()).unwrap_or_default();
    lines.push(Line::raw(format!(
        "Install ESXi {} (build {}) on {kernel}:",
        plan.media.version, plan.media.build
    )));
    lines.push(Line::raw(format!(
        "  {} {}, {}",
        t.name,
        t.model.as_deref().unwrap_or(""),
        human_size(t.size_bytes)
    )));
    let kept: Vec<u32> = plan
        .layout
        .partitions
        .iter()
        .filter(|x| x.action == Action::Preserve)
        .map(|x| x.entry.number)
        .collect();
    let existing = disk.map(|d| d.content.clone());
    erased_lines(&mut lines, &kernel, plan, existing.as_ref(), &kept);
    for n in &kept {
        lines.push(Line::raw(format!(
            "  KEPT: partition {n} (VMFS datastore), untouched"
        )));
    }
    new_partition_lines(&mut lines, plan);
    host_lines(&mut lines, plan);
    lines.push(Line::raw("Root password: set (kept as a SHA-512 hash)"));
    for d in &plan.dpus {
        lines.push(Line::raw(format!("DPU: {}: {}", d.name, d.action)));
    }
    for w in &p.warnings {
        lines.push(Line::styled(format!("Warning: {w}"), WARNING));
    }
    lines
}

/// What is erased: nothing on a blank disk, else everything, each partition not kept listed.
pub(super) fn erased_lines(
    lines: &mut Vec<Line<'static>>,
    kernel: &str,
    plan: &Plan,
    existing: Option<&DiskContent>,
    kept: &[u32],
) {
    let t = &plan.target;
    let blank = existing.as_ref().is_some_and(|c| {
        c.table == ksinstall::inventory::PartitionTable::Blank && c.partitions.is_empty()
    });
    if blank {
        lines.push(Line::raw(format!(
            "  ERASED: nothing: {kernel} is blank now"
        )));
    } else {
        lines.push(Line::styled(
            format!("  ERASED: everything on {kernel} now ({})", t.holds_now),
            ERROR,
        ));
        if let Some(c) = existing {
            for e in c.partitions.iter().filter(|e| !kept.contains(&e.number)) {
                lines.push(Line::styled(
                    format!(
                        "    partition {} ({}), {}",
                        e.number,
                        if e.name.is_empty() {
                            "unnamed"
                        } else {
                            &e.name
                        },
                        human_size(
                            (e.last_lba.saturating_add(1).saturating_sub(e.first_lba))
                                .saturating_mul(u64::from(t.logical_sector_size))
                        )
                    ),
                    ERROR,
                ));
            }
        }
    }
}

/// The partitions the layout makes or keeps, with their file systems.
pub(super) fn new_partition_lines(lines: &mut Vec<Line<'static>>, plan: &Plan) {
    lines.push(Line::raw("  New partitions:"));
    for part in &plan.layout.partitions {
        let fs = match &part.filesystem {
            Filesystem::Fat16 { .. } => "FAT16",
            Filesystem::VmfslAtFirstBoot => "VMFS-L at first boot",
            Filesystem::VmfsAtFirstBoot | Filesystem::VmfsByFirstBootScript { .. } => {
                "VMFS at first boot"
            }
            Filesystem::Preserved => "kept",
        };
        lines.push(Line::raw(format!(
            "    {:>2} {:<14} {:>10}  {}",
            part.entry.number,
            role_name(part.role),
            human_size(part.size_bytes),
            fs
        )));
    }
}

/// The host's keyboard and network as the plan configures them.
pub(super) fn host_lines(lines: &mut Vec<Line<'static>>, plan: &Plan) {
    let h = &plan.host;
    lines.push(Line::raw(format!("Keyboard: {}", h.keyboard)));
    lines.push(Line::raw(format!("Network:  {}", h.network)));
    if !h.nameservers.is_empty() || h.hostname != "localhost" {
        lines.push(Line::raw(format!(
            "          host name {}, DNS {}",
            h.hostname,
            if h.nameservers.is_empty() {
                "none".to_string()
            } else {
                h.nameservers.join(", ")
            }
        )));
    }
    if let Some(v) = h.vlan_id {
        lines.push(Line::raw(format!("          VLAN {v}")));
    }
    // What ESXi's own first boot does besides the settings above (docs/FIRSTBOOT.md), in one line.
    let formats = &h.formats_made;
    if !formats.is_empty() {
        lines.push(Line::raw(format!(
            "First boot: formats {}{}",
            formats.join(", "),
            if h.reboot_after_format {
                "; restarts once"
            } else {
                ""
            }
        )));
    }
}

pub(super) fn confirm(f: &mut Frame<'_>, app: &App, version: &str) {
    let help = if matches!(app.planned, Some(Ok(_))) {
        "F11: install  Up/Down: scroll  Esc: back"
    } else {
        "Esc: back"
    };
    let area = frame_with(f, "Confirm install", help, version);
    let lines = confirm_lines(app);
    // Rows the wrapped text takes, to say when there is more below.
    let width = usize::from(area.width.max(1));
    let rows: usize = lines.iter().map(|l| l.width().max(1).div_ceil(width)).sum();
    let shown = usize::from(area.height);
    let more = rows > shown + usize::from(app.confirm_scroll);
    let [text, tail] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(u16::from(more))]).areas(area);
    f.render_widget(wrapped(lines).scroll((app.confirm_scroll, 0)), text);
    if more {
        f.render_widget(
            Paragraph::new("-- more below: Down or PgDn to read it --").style(WARNING),
            tail,
        );
    }
}
