//! `ksinstall interactive`: the console install. A full-screen text UI asks what a kickstart
//! says, turns the answers into the same `Kickstart` model (through the same parser), and runs
//! the scripted install's plan and apply. See docs/CONSOLE.md.

mod draw;
pub mod save;
pub mod state;

use std::io::{IsTerminal, Stdout};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ksinstall::exit::Outcome;
use ksinstall::install::{Failure, Options, Session};
use ksinstall::report::StepId;
use ksinstall::report::{Event, EventSink};
use ksinstall::source::cmdline::BootOptions;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, KeyCode, KeyEventKind};
use ratatui::crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::crossterm::{cursor, execute};
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

use super::install::Sinks;
use state::{App, Step};

const EULA: &str = include_str!("eula.txt");

/// Install ESXi from the console: a full-screen dialogue instead of a kickstart.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the hardware is read: sys/, dev/, proc/cmdline below this directory.
    #[arg(long, value_name = "DIR", default_value = "/")]
    sysroot: PathBuf,
    /// The installation media: a directory (extracted ISO), an ISO image or an http(s):// URL.
    #[arg(long, value_name = "DIR|URL")]
    media: String,
    /// Write the answers here as a kickstart (root password hashed), to repeat the install on
    /// other hosts with `ksinstall install --ks FILE`: the disk by a --firstdisk rule (its
    /// model or vendor), no address or host name unless static addressing was chosen.
    #[arg(long, value_name = "FILE")]
    save_ks: Option<PathBuf>,
    /// With --save-ks: save this host's exact answers instead (its disk by name, its static
    /// address and host name).
    #[arg(long, requires = "save_ks")]
    save_ks_exact: bool,
    #[command(flatten)]
    dpu: super::DpuArgs,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let http = ksinstall::http::Http::new(Default::default())?;
    let form = if a.save_ks_exact {
        save::Form::Exact
    } else {
        save::Form::Fleet
    };
    let save_ks = a.save_ks.as_deref().map(|path| save::SaveKs { path, form });
    // The console chooses its disk on the screen, runs no scripts, and writes no report file.
    let options = Options::new(&a.sysroot, a.dpu.access(&a.sysroot), a.dpu.firmware_root());
    let sinks = Sinks::console_only();
    let session = Session::new(options, &sinks);
    let boot = match session.boot_options(None) {
        Ok(b) => b,
        Err(f) => return Ok(session.refuse(&f)),
    };
    Ok(run_console(
        &session, &sinks, boot, &a.media, save_ks, &http,
    ))
}

/// The console install, for `interactive` and for `boot` without `ks=`: a run of `session`
/// (its refusals and its end reported as every run's), drawn on the screen. `sinks`: muted while
/// the screen is up.
pub fn run_console(
    session: &Session<'_>,
    sinks: &Sinks,
    boot: BootOptions,
    media: &str,
    save_ks: Option<save::SaveKs<'_>>,
    http: &ksinstall::http::Http,
) -> Outcome {
    let refuse = |step: StepId, outcome: Outcome, message: String| {
        session.refuse(&Failure::new(step, outcome, message))
    };
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        let why = "the console install needs a terminal; use `ksinstall install --ks FILE` for a scripted install";
        return refuse(StepId::Source, Outcome::UsageOrIo, why.into());
    }
    // Everything is read before the screen is taken, so these errors print plainly.
    // Log lines on stderr would garble the screen: off, unless RUST_LOG asks for them.
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(log::LevelFilter::Off);
    }
    if let Err(outcome) = session.check_report_path() {
        return outcome;
    }
    let host = match session.prepare(boot, media, http) {
        Ok(h) => h,
        Err(f) => return session.refuse(&f),
    };
    let mut app = App::new(host, session.options().strict);
    let version = app.ctx.media.manifest.version.clone();

    // Until the install starts, a terminal that fails ends the run as a refusal: one `failed`
    // event and the report, nothing written.
    let mut screen = match Screen::take(sinks) {
        Ok(s) => s,
        Err(e) => return refuse(StepId::Plan, Outcome::UsageOrIo, format!("{e:#}")),
    };
    let planned = match answers(&mut screen, &mut app) {
        Ok(Some(p)) => p,
        Ok(None) => {
            drop(screen);
            let why = "the console install was left; nothing was written";
            return refuse(StepId::Plan, Outcome::UsageOrIo, why.into());
        }
        Err(e) => {
            drop(screen);
            let why = format!("the console: {e:#}; nothing was written");
            return refuse(StepId::Plan, Outcome::UsageOrIo, why);
        }
    };
    let saved = match save_ks.map(|s| save_kickstart(&app, &planned, s)) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            drop(screen);
            let why = format!("{e:#}; nothing was installed");
            return refuse(StepId::Plan, Outcome::UsageOrIo, why);
        }
    };

    let plan = &planned.plan;
    let ended = install_on_screen(&mut screen, session, &app.ctx, plan, &version);
    let media = &app.ctx.media;
    let outcome = ended.outcome();
    let result = match ended.failure {
        None => Ok(()),
        Some(f) => Err(f),
    };
    let kernel = app
        .chosen_disk()
        .map(|d| d.kernel_name.clone())
        .unwrap_or_default();
    let lines = result_lines(&result, plan, &kernel, saved, media.is_local());
    // The run has ended and is reported: a terminal that fails now only ends the result screen
    // (the outcome below is the run's, printed as well).
    if let Err(e) = show_result(&mut screen, &lines, result.is_ok(), &version) {
        log::warn!("the console's result screen: {e:#}");
    }
    drop(screen);
    match &result {
        Ok(()) => eprintln!(
            "ksinstall: {} ESXi {} on {} ({})",
            match plan.kind {
                ksinstall::plan::RunKind::Install => "installed",
                ksinstall::plan::RunKind::Upgrade => "upgraded to",
            },
            plan.media.build,
            plan.target.name,
            plan.target.path.display()
        ),
        // Said as an event while the screen was up (the webhook heard it); printed now.
        Err(e) => eprintln!("ksinstall: error: {}: {}", e.step, e.message),
    }
    outcome
}

/// The answer screens until F11 (the plan to install) or leaving (`None`).
fn answers(screen: &mut Screen, app: &mut App) -> anyhow::Result<Option<state::Planned>> {
    loop {
        screen
            .term
            .draw(|f| draw::draw(f, app, EULA))
            .context("drawing the screen")?;
        let ev = event::read().context("reading the keyboard")?;
        let event::Event::Key(k) = ev else { continue };
        if k.kind != KeyEventKind::Press {
            continue;
        }
        match app.key(k) {
            Step::Stay => {}
            Step::Quit => return Ok(None),
            Step::Install => break,
        }
    }
    match app.planned.take() {
        Some(Ok(planned)) => Ok(Some(planned)),
        _ => anyhow::bail!("F11 without a plan"),
    }
}

/// The result until Enter or Esc.
fn show_result(
    screen: &mut Screen,
    lines: &[String],
    ok: bool,
    version: &str,
) -> anyhow::Result<()> {
    // Keys pressed while installing must not dismiss the result unseen.
    while event::poll(Duration::ZERO).context("reading the keyboard")? {
        event::read().context("reading the keyboard")?;
    }
    loop {
        screen
            .term
            .draw(|f| draw::draw_result(f, lines, ok, version))
            .context("drawing the screen")?;
        if let event::Event::Key(k) = event::read().context("reading the keyboard")? {
            if k.kind == KeyEventKind::Press && matches!(k.code, KeyCode::Enter | KeyCode::Esc) {
                return Ok(());
            }
        }
    }
}

/// The install: the session's apply (the scripted path's media check, lay-down, report), its
/// progress drawn on the screen.
fn install_on_screen(
    screen: &mut Screen,
    session: &Session<'_>,
    host: &ksinstall::install::Prepared,
    plan: &ksinstall::plan::Plan,
    version: &str,
) -> ksinstall::install::Ended {
    let sink = ScreenSink {
        inner: Mutex::new(SinkState {
            term: &mut screen.term,
            progress: draw::Progress::default(),
            drawn: None,
        }),
        version: version.to_string(),
    };
    // apply checks the media first (plan.check_media), beside packing the DPU payload; the
    // plan's warnings and a failure are shown on the way.
    session.apply_planned(host, plan.clone(), state::KICKSTART_NAME, &sink)
}

/// The result screen's text. `media_local`: the media were checked in full before the first
/// write.
fn result_lines(
    result: &Result<(), ksinstall::install::Failure>,
    plan: &ksinstall::plan::Plan,
    kernel: &str,
    saved: Option<save::SaveKs<'_>>,
    media_local: bool,
) -> Vec<String> {
    let e = match result {
        Ok(()) => {
            let mut l = vec![
                format!(
                    "ESXi {} (build {}) is installed on {kernel} ({}).",
                    plan.media.version, plan.media.build, plan.target.name
                ),
                String::new(),
                "What to do next:".into(),
                "  1. Remove the installation media (USB stick, CD, virtual media).".into(),
                format!("  2. Reboot the host; it starts ESXi from {kernel}."),
                "  3. Manage it at the address the console shows (DCUI) after boot.".into(),
            ];
            if let Some(s) = saved {
                l.push(String::new());
                l.push(format!(
                    "Your answers are saved as a kickstart: {}",
                    s.path.display()
                ));
                l.push(match s.form {
                    save::Form::Fleet => {
                        "`ksinstall install --ks FILE` repeats this install on other hosts.".into()
                    }
                    save::Form::Exact => {
                        "It names this host's disk and address: it repeats this exact install."
                            .into()
                    }
                });
            }
            return l;
        }
        Err(e) => e,
    };
    vec![
        format!("The install failed in step {}:", e.step),
        e.message.clone(),
        String::new(),
        format!("Exit code {}.", e.outcome as u8),
        if e.step == StepId::Media && media_local {
            "Nothing was written: the disk is as it was.".into()
        } else {
            "The disk may not boot: fix the cause and install again.".into()
        },
    ]
}

/// Writes the kickstart `--save-ks` asks for (mode 0600: it holds the root password's hash).
fn save_kickstart<'a>(
    app: &App,
    planned: &state::Planned,
    save: save::SaveKs<'a>,
) -> anyhow::Result<save::SaveKs<'a>> {
    let Some(chosen) = app.chosen_disk() else {
        anyhow::bail!("F11 without a chosen disk");
    };
    let text = save::text(
        &planned.kickstart,
        &app.ctx.host.inventory,
        chosen,
        save.form,
    );
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(save.path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .with_context(|| format!("saving the kickstart to {}", save.path.display()))?;
    Ok(save)
}

/// The terminal in raw mode on the alternate screen; given back as it was on drop, also on an
/// error.
struct Screen<'a> {
    term: Terminal<CrosstermBackend<Stdout>>,
    /// Told while the screen is up, so that nothing else prints on it.
    sinks: &'a Sinks,
}

impl Screen<'_> {
    fn take(sinks: &Sinks) -> anyhow::Result<Screen<'_>> {
        // A panic's message is printed before the unwinding drops the Screen: on the alternate
        // screen, where it would be lost. Give the terminal back first (console thread only:
        // a worker thread's panic is reported on the screen as a failed step).
        static HOOK: std::sync::Once = std::sync::Once::new();
        let console = std::thread::current().id();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if std::thread::current().id() == console {
                    let _ = execute!(std::io::stdout(), LeaveAlternateScreen, cursor::Show);
                    let _ = terminal::disable_raw_mode();
                }
                previous(info);
            }));
        });
        terminal::enable_raw_mode().context("putting the terminal in raw mode")?;
        let mut out = std::io::stdout();
        execute!(out, EnterAlternateScreen, cursor::Hide).context("taking the screen")?;
        let mut term = Terminal::new(CrosstermBackend::new(out)).context("opening the terminal")?;
        // A serial line often reports no size: draw for the 80x24 every console has.
        let size = term.size().unwrap_or_default();
        if size.width == 0 || size.height == 0 {
            term = Terminal::with_options(
                CrosstermBackend::new(std::io::stdout()),
                TerminalOptions {
                    viewport: Viewport::Fixed(Rect::new(0, 0, 80, 24)),
                },
            )
            .context("opening the terminal")?;
        }
        sinks.set_screen_up(true);
        Ok(Screen { term, sinks })
    }
}

impl Drop for Screen<'_> {
    fn drop(&mut self) {
        let _ = execute!(self.term.backend_mut(), LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
        self.sinks.set_screen_up(false);
    }
}

struct SinkState<'a> {
    term: &'a mut Terminal<CrosstermBackend<Stdout>>,
    progress: draw::Progress,
    drawn: Option<Instant>,
}

/// Shows the install's events on the screen; progress redraws at most ten times a second.
struct ScreenSink<'a> {
    inner: Mutex<SinkState<'a>>,
    version: String,
}

impl EventSink for ScreenSink<'_> {
    fn emit(&self, event: Event) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.progress.update(&event);
        let due = s
            .drawn
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if matches!(event, Event::Progress { .. }) && !due {
            return;
        }
        s.drawn = Some(Instant::now());
        let SinkState { term, progress, .. } = &mut *s;
        // A screen that cannot be drawn must not stop the install.
        let _ = term.draw(|f| draw::draw_progress(f, progress, &self.version));
    }
}
