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

mod answers;
mod confirm;
mod dpu;

use answers::*;
use confirm::*;
use dpu::*;

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
