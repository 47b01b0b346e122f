//! Drawing the console screens. Only ASCII and the 8 basic colours, so that a Linux VT font and
//! a serial terminal show the same thing as an xterm.

use ksinstall::inventory::DiskContent;
use ksinstall::kickstart::grammar::KEYBOARDS;
use ksinstall::plan::Plan;
use ksinstall::report::{Event, StepId};
use ksinstall::size::human as human_size;
use ksinstall::storage::{Action, Filesystem, Role};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

use super::state::{App, NetField, Screen, VmfsChoice};

/// Box corners and lines a serial line and the VT font both have.
const ASCII: border::Set = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

const ERROR: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
const WARNING: Style = Style::new().fg(Color::Yellow);
const SELECTED: Style = Style::new().fg(Color::Black).bg(Color::Yellow);

/// Title bar, the screen's box, and its help line; returns the inside of the box.
fn frame_with(f: &mut Frame<'_>, title: &str, help: &str, version: &str) -> Rect {
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(
        Paragraph::new(format!(" ksinstall - ESXi {version} installer"))
            .style(Style::new().fg(Color::White).bg(Color::Blue)),
        top,
    );
    f.render_widget(
        Paragraph::new(format!(" {help}")).style(Style::new().fg(Color::Black).bg(Color::White)),
        bottom,
    );
    let block = Block::new()
        .borders(Borders::ALL)
        .border_set(ASCII)
        .title(format!(" {title} "));
    let inner = block.inner(body);
    f.render_widget(block, body);
    inner
}

fn wrapped(text: impl Into<Text<'static>>) -> Paragraph<'static> {
    Paragraph::new(text).wrap(Wrap { trim: false })
}

pub fn draw(f: &mut Frame<'_>, app: &App, eula: &str) {
    let version = app.ctx.media.manifest.version.clone();
    match app.screen {
        Screen::Welcome => welcome(f, app, &version),
        Screen::Eula => {
            let area = frame_with(
                f,
                "End User License Agreement",
                "Up/Down PgUp/PgDn: scroll  F11: accept and continue  Esc: back",
                &version,
            );
            f.render_widget(wrapped(eula.to_string()).scroll((app.eula_scroll, 0)), area);
        }
        Screen::Disk => disks(f, app, &version),
        Screen::Vmfs => vmfs(f, app, &version),
        Screen::Keyboard => {
            let area = frame_with(
                f,
                "Keyboard layout",
                "Up/Down or a letter: select  Enter: choose  Esc: back",
                &version,
            );
            let items: Vec<ListItem> = KEYBOARDS.iter().map(|k| ListItem::new(*k)).collect();
            let mut state = ListState::default().with_selected(Some(app.keyboard_cursor));
            f.render_stateful_widget(
                List::new(items)
                    .highlight_style(SELECTED)
                    .highlight_symbol("> "),
                area,
                &mut state,
            );
        }
        Screen::Password => password(f, app, &version),
        Screen::Network => network(f, app, &version),
        Screen::Dpu => dpu(f, app, &version),
        Screen::Confirm => confirm(f, app, &version),
    }
}

fn welcome(f: &mut Frame<'_>, app: &App, version: &str) {
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
fn hardware_refusals(app: &App) -> Vec<String> {
    app.ctx
        .host
        .inventory
        .dpus
        .iter()
        .filter(|d| d.supported)
        .filter_map(|d| {
            let o = app
                .ctx
                .host
                .dpu_observed
                .iter()
                .find(|o| o.address == d.address)?;
            let p = o.problem.as_ref().filter(|_| o.not_a_dpu.is_none())?;
            Some(format!("{} {} in {}: {p}", d.vendor, d.model, d.location()))
        })
        .collect()
}

fn disk_kind(d: &ksinstall::inventory::Disk) -> String {
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

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        format!("{s:<n$}")
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

fn disks(f: &mut Frame<'_>, app: &App, version: &str) {
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
        if super::state::needs_vmfs_choice(&d.content) {
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

fn vmfs(f: &mut Frame<'_>, app: &App, version: &str) {
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

fn password(f: &mut Frame<'_>, app: &App, version: &str) {
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

fn network(f: &mut Frame<'_>, app: &App, version: &str) {
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

fn dpu(f: &mut Frame<'_>, app: &App, version: &str) {
    let area = frame_with(
        f,
        "Data Processing Unit (DPU)",
        "Enter: continue  Esc: back",
        version,
    );
    let inv = &app.ctx.host.inventory;
    let mut lines = Vec::new();
    if inv.dpus.is_empty() {
        lines.push(Line::raw(
            "No DPU was found: ESXi is installed on the host alone.",
        ));
    }
    let planned = match &app.planned {
        Some(Ok(p)) => Some(&p.plan),
        _ => None,
    };
    let shown_findings = inv.dpu_findings(&[]);
    let findings: Vec<String> = shown_findings.iter().map(|f| f.to_string()).collect();
    for d in &inv.dpus {
        lines.push(Line::styled(
            format!("{} {}", d.vendor, d.model),
            Style::new().add_modifier(Modifier::BOLD),
        ));
        lines.push(Line::raw(format!("  Location:   {}", d.location())));
        lines.push(Line::raw(format!(
            "  Management: {}",
            d.management.as_deref().unwrap_or("none found")
        )));
        lines.push(Line::raw(format!(
            "  Supported by vSphere 8: {}",
            if d.supported { "yes" } else { "no" }
        )));
        let action = planned.and_then(|p| p.dpus.iter().find(|x| x.address == d.address));
        let left_alone =
            planned.and_then(|p| p.dpus_not_used.iter().find(|x| x.address == d.address));
        match action {
            None if left_alone.is_some() => {
                let why = left_alone.map(|n| n.reason.as_str()).unwrap_or_default();
                lines.push(Line::styled(
                    "  This install leaves it alone: ESXi is installed without DSE.",
                    WARNING,
                ));
                lines.push(Line::styled(format!("    {why}"), WARNING));
            }
            None if findings.is_empty() => {
                lines.push(Line::raw("  This install: no plan (see below)"));
            }
            Some(a) => {
                lines.push(Line::raw(format!(
                    "  Media for it: ESXi {} ({} ESXio components)",
                    app.ctx.media.manifest.version,
                    app.ctx.media.manifest.dpu_components().count()
                )));
                lines.push(Line::raw(format!("  This install: {}", a.action)));
            }
            None => {
                lines.push(Line::styled("  This install cannot use it:", WARNING));
                for finding in &findings {
                    lines.push(Line::styled(format!("    {finding}"), WARNING));
                }
            }
        }
        lines.push(Line::raw(""));
    }
    // A refusal on DPU rules the findings above already show is not repeated.
    if let Some(Err(e)) = app.planned.as_ref().filter(|p| match p {
        Err(e) => {
            e.dpu_findings.is_empty() || !e.dpu_findings.iter().all(|f| shown_findings.contains(f))
        }
        Ok(_) => false,
    }) {
        lines.push(Line::styled(
            format!("The install cannot go ahead: {e}"),
            ERROR,
        ));
    }
    f.render_widget(wrapped(lines), area);
}

fn role_name(r: Role) -> &'static str {
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
        lines.push(Line::raw(format!(
            "DPU: {} {} in slot {}: {}",
            d.vendor,
            d.model,
            d.slot.as_deref().unwrap_or("?"),
            d.action
        )));
    }
    for w in &p.warnings {
        lines.push(Line::styled(format!("Warning: {w}"), WARNING));
    }
    lines
}

/// What is erased: nothing on a blank disk, else everything, each partition not kept listed.
fn erased_lines(
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
fn new_partition_lines(lines: &mut Vec<Line<'static>>, plan: &Plan) {
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
fn host_lines(lines: &mut Vec<Line<'static>>, plan: &Plan) {
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

fn confirm(f: &mut Frame<'_>, app: &App, version: &str) {
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

/// What the install screen shows, fed by events.
#[derive(Default)]
pub struct Progress {
    /// (step, description, done bytes, total bytes, finished)
    pub steps: Vec<(StepId, String, u64, Option<u64>, bool)>,
    pub warnings: Vec<String>,
    pub failure: Option<String>,
}

impl Progress {
    pub fn update(&mut self, e: &Event) {
        match e {
            Event::StepStarted {
                step,
                description,
                total_bytes,
            } => self
                .steps
                .push((*step, description.clone(), 0, *total_bytes, false)),
            Event::Progress {
                step, done_bytes, ..
            } => {
                if let Some(s) = self.steps.iter_mut().rev().find(|s| s.0 == *step) {
                    s.2 = *done_bytes;
                }
            }
            Event::StepFinished { step, .. } => {
                if let Some(s) = self.steps.iter_mut().rev().find(|s| s.0 == *step) {
                    s.4 = true;
                    if let Some(t) = s.3 {
                        s.2 = t;
                    }
                }
            }
            Event::Warning { step, message } => self.warnings.push(format!("{step}: {message}")),
            // A device's own words (a DPU's log line): shown as the step's description.
            Event::Status { step, message } => {
                if let Some(s) = self.steps.iter_mut().rev().find(|s| s.0 == *step) {
                    s.1 = message.clone();
                }
            }
            Event::Failed { step, message, .. } => {
                self.failure = Some(format!("{step}: {message}"))
            }
            // The console's kickstart has neither findings left (it plans only a clean one) nor
            // scripts.
            Event::Diagnostic(_)
            | Event::ScriptOutput { .. }
            | Event::ScriptEnded { .. }
            | Event::Finished { .. } => {}
        }
    }
}

pub fn draw_progress(f: &mut Frame<'_>, p: &Progress, version: &str) {
    let area = frame_with(
        f,
        "Installing",
        "Please wait: do not turn the host off",
        version,
    );
    let mut lines = Vec::new();
    let skip = p
        .steps
        .len()
        .saturating_sub(area.height.saturating_sub(2) as usize);
    for (step, description, done, total, finished) in p.steps.iter().skip(skip) {
        let bar = match total {
            Some(t) if *t > 0 => {
                let width = 20u64;
                let filled = (done.min(t) * width / t) as usize;
                format!(
                    "[{}{}] {:>3}%",
                    "#".repeat(filled),
                    ".".repeat(width as usize - filled),
                    done.min(t) * 100 / t
                )
            }
            _ if *finished => "done".into(),
            _ => "working".into(),
        };
        lines.push(Line::raw(format!(
            "{} {:<27} {}",
            cut(step.as_str(), 10),
            bar,
            cut(description, 38).trim_end()
        )));
    }
    if let Some(e) = &p.failure {
        lines.push(Line::styled(format!("Failed: {e}"), ERROR));
    }
    f.render_widget(wrapped(lines), area);
}

pub fn draw_result(f: &mut Frame<'_>, lines: &[String], ok: bool, version: &str) {
    let area = frame_with(
        f,
        if ok {
            "Installation complete"
        } else {
            "Installation failed"
        },
        "Enter: leave the installer",
        version,
    );
    let style = if ok { Style::new() } else { ERROR };
    let text: Vec<Line> = lines
        .iter()
        .map(|l| Line::styled(l.clone(), style))
        .collect();
    f.render_widget(wrapped(text), area);
}
