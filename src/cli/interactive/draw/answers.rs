//! The screens that ask: welcome, disk, VMFS, password, network.

use super::*;

pub(super) fn welcome(f: &mut Frame<'_>, app: &App, version: &str) {
    let area = frame_with(f, "Welcome", "Enter: continue  Esc: quit", version);
    let m = &app.ctx.media.manifest;
    let inv = &app.ctx.host.inventory;
    let text = format!(
        "Welcome to the installation of VMware ESXi {} (build {}).\n\n\
         Media: {}\n\
         Disks found: {}    DPUs found: {}\n\n\
         You will accept the license, choose the disk, the keyboard layout, the root \
         password and the network, and see what will be put on the DPU. Nothing is written \
         before you confirm the final screen, which lists exactly what will be erased.\n\n\
         Esc goes back one screen at any time.",
        m.version,
        m.build,
        app.ctx.media.source.describe(),
        inv.disks.len(),
        inv.dpus.len()
    );
    let mut lines: Vec<Line<'static>> = text.lines().map(|l| Line::raw(l.to_string())).collect();
    // What the hardware refuses is known now, before any question: no answer changes it.
    let refusals = hardware_refusals(app);
    if !refusals.is_empty() {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            "The install cannot go ahead on this host as it is:",
            ERROR,
        ));
        for r in refusals {
            lines.push(Line::styled(format!("  {r}"), ERROR));
        }
        lines.push(Line::raw(
            "No answer on the next screens changes this: do what it says, then start the installer again (Esc: quit).",
        ));
    }
    f.render_widget(wrapped(lines), area);
}

/// The DPUs this install would have to install and cannot reach through their interface (no
/// rshim device, devlink refusing, ...), each with the card's own words on what to do; cards
/// ESXi would not use as DPUs are not refusals (the host is installed without them).
pub(super) fn hardware_refusals(app: &App) -> Vec<String> {
    app.ctx
        .host
        .inventory
        .supported_dpus()
        .filter_map(|d| {
            let o = app
                .ctx
                .host
                .dpu_observed
                .iter()
                .find(|o| o.address == d.identity.address)?;
            let p = o.problem.as_ref().filter(|_| o.not_a_dpu.is_none())?;
            Some(format!("{}: {p}", d.identity.name()))
        })
        .collect()
}

pub(super) fn disk_kind(d: &ksinstall::inventory::Disk) -> String {
    let medium = if d.ssd { "SSD" } else { "HDD" };
    let place = if d.usb {
        "USB"
    } else if d.remote {
        "remote"
    } else {
        "local"
    };
    format!("{place} {} {medium}", d.transport.as_str())
}

pub(super) fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        format!("{s:<n$}")
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

pub(super) fn disks(f: &mut Frame<'_>, app: &App, version: &str) {
    let area = frame_with(
        f,
        "Select a disk to install on",
        "Up/Down: select  Enter: choose  Esc: back",
        version,
    );
    let inv = &app.ctx.host.inventory;
    let mut lines = vec![Line::styled(
        format!(
            "  {} {} {} {} {}",
            cut("Device", 8),
            cut("Size", 9),
            cut("Kind", 16),
            cut("Model", 16),
            "Contains"
        ),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    // Rows left for the table once the details below it are shown; the window follows the
    // cursor on hosts with many disks.
    let room = usize::from(area.height.saturating_sub(9)).max(3);
    let first = app.disk_cursor.saturating_sub(room - 1);
    for (i, d) in inv.disks.iter().enumerate().skip(first).take(room) {
        let row = format!(
            "{} {} {} {} {} {}",
            if i == app.disk_cursor { ">" } else { " " },
            cut(&d.kernel_name, 8),
            cut(&human_size(d.size_bytes), 9),
            cut(&disk_kind(d), 16),
            cut(&d.model.clone().unwrap_or_default(), 16),
            cut(&d.content.summary(), 22)
        );
        lines.push(if i == app.disk_cursor {
            Line::styled(row, SELECTED)
        } else {
            Line::raw(row)
        });
    }
    if inv.disks.is_empty() {
        lines.push(Line::styled("  No disks were found.", ERROR));
    }
    if inv.disks.len() > room {
        lines.push(Line::raw(format!(
            "  (disk {} of {}: Up/Down to see the others)",
            app.disk_cursor + 1,
            inv.disks.len()
        )));
    }
    lines.push(Line::raw(""));
    if let Some(d) = inv.disks.get(app.disk_cursor) {
        lines.push(Line::raw(format!("Name:     {}", d.name)));
        lines.push(Line::raw(format!("Model:    {}", d.description())));
        lines.push(Line::raw(format!("Contains: {}", d.content.summary())));
        if super::super::state::needs_vmfs_choice(&d.content) {
            lines.push(Line::styled(
                "Warning: this disk holds data ESXi may need (VMFS, ESXi); you will be asked what to do with it.",
                WARNING,
            ));
        }
    }
    if let Some(e) = &app.disk_error {
        lines.push(Line::styled(format!("Error: {e}"), ERROR));
    }
    f.render_widget(wrapped(lines), area);
}

pub(super) fn vmfs(f: &mut Frame<'_>, app: &App, version: &str) {
    let area = frame_with(
        f,
        "The disk holds data",
        "Up/Down: select  Enter: choose  Esc: back",
        version,
    );
    let Some(d) = app.chosen_disk() else { return };
    let mut lines = vec![
        Line::styled(
            format!("Warning: {} ({}) is not empty.", d.kernel_name, d.name),
            WARNING,
        ),
        Line::raw(format!("It holds: {}", d.content.summary())),
        Line::raw(""),
    ];
    if let Some(esx) = &d.content.esx {
        lines.push(Line::raw(format!(
            "ESXi {} is installed on it: upgrade it, or overwrite it with a fresh install.",
            esx.version.as_deref().unwrap_or("unknown build")
        )));
    }
    if !d.content.vmfs.is_empty() {
        lines.push(Line::raw(
            "A VMFS datastore may hold virtual machines: overwriting erases them.",
        ));
    }
    lines.push(Line::raw(""));
    for (i, c) in app.vmfs_choices().iter().enumerate() {
        let label = match c {
            VmfsChoice::Upgrade => format!(
                "Upgrade: ESXi {} -> {} into the other boot bank; configuration and datastores kept, the old bank stays for rollback",
                d.content
                    .esx
                    .as_ref()
                    .and_then(|e| e.version.as_deref())
                    .unwrap_or("?"),
                app.ctx.media.manifest.build
            ),
            VmfsChoice::Overwrite if !d.content.vsan.is_empty() => {
                "Overwrite: erase the whole disk, its vSAN disk group included".into()
            }
            VmfsChoice::Overwrite => "Overwrite: erase the whole disk, datastores included".into(),
            VmfsChoice::Preserve => format!(
                "Preserve: keep the VMFS datastore (partition {}), replace the rest",
                d.content
                    .vmfs
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            VmfsChoice::Back => "Go back: choose another disk".into(),
        };
        let row = format!("{} {label}", if i == app.vmfs_cursor { ">" } else { " " });
        lines.push(if i == app.vmfs_cursor {
            Line::styled(row, SELECTED)
        } else {
            Line::raw(row)
        });
    }
    f.render_widget(wrapped(lines), area);
}

pub(super) fn password(f: &mut Frame<'_>, app: &App, version: &str) {
    let area = frame_with(
        f,
        "Root password",
        "Tab: next field  Enter: continue  Esc: back",
        version,
    );
    let p = &app.password;
    let field = |label: &str, value: &str, focused: bool| {
        let shown = format!("{label}{}", "*".repeat(value.chars().count()));
        if focused {
            Line::from(vec![
                Span::raw(shown),
                Span::styled("_", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            ])
        } else {
            Line::raw(shown)
        }
    };
    let mut lines = vec![
        Line::raw("Enter a password for the root user, twice."),
        Line::raw("7 to 40 characters; at least three of: lowercase, uppercase, digits, other."),
        Line::raw("A leading capital and a trailing digit do not count."),
        Line::raw(""),
        field("Root password:    ", &p.first, p.focus == 0),
    ];
    if let Some(e) = &p.error_first {
        lines.push(Line::styled(format!("  Error: {e}"), ERROR));
    }
    lines.push(Line::raw(""));
    lines.push(field("Confirm password: ", &p.second, p.focus == 1));
    if let Some(e) = &p.error_second {
        lines.push(Line::styled(format!("  Error: {e}"), ERROR));
    }
    if app.answers.root_hash.is_some() {
        lines.push(Line::raw(""));
        lines.push(Line::raw(
            "A password is already set: leave both fields empty to keep it.",
        ));
    }
    f.render_widget(wrapped(lines), area);
}

pub(super) fn network(f: &mut Frame<'_>, app: &App, version: &str) {
    let area = frame_with(
        f,
        "Network",
        "Tab/Up/Down: field  Left/Right: DHCP or static  Enter: continue  Esc: back",
        version,
    );
    let n = &app.network;
    let mut lines = vec![
        Line::raw("The management network (vmk0) on the NIC the host booted from."),
        Line::raw(""),
    ];
    for field in n.fields() {
        let value = match field {
            NetField::Mode => format!("< {} >", n.value(field)),
            _ => n.value(field).to_string(),
        };
        let label = format!("{:<16}: ", field.label());
        let focused = n.focused() == field;
        lines.push(Line::from(vec![
            Span::raw(label),
            Span::styled(
                if focused && field != NetField::Mode {
                    format!("{value}_")
                } else {
                    value
                },
                if focused {
                    SELECTED
                } else {
                    Style::new().add_modifier(Modifier::UNDERLINED)
                },
            ),
        ]));
        for (_, message, is_error) in n.notes.iter().filter(|x| x.0 == field) {
            lines.push(if *is_error {
                Line::styled(format!("  Error: {message}"), ERROR)
            } else {
                Line::styled(format!("  Note: {message}"), WARNING)
            });
        }
    }
    if !n.dhcp {
        lines.push(Line::raw(""));
        lines.push(Line::raw(
            "DNS servers: up to two, separated by commas. Empty fields are left out.",
        ));
    }
    f.render_widget(wrapped(lines), area);
}
