//! Events and the final report. Every stage tells what it does through one small `EventSink`;
//! the sink decides how it is shown: progress bars on a terminal, JSON lines for machines, or
//! nothing. No stage depends on how events are shown.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub mod webhook;

/// The steps of a run, in events, errors, timings and reports. Their JSON names are stable
/// (docs/INSTALL.md): fleet tools key on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepId {
    /// Boot options and the kickstart's location (`ks=`, `--ks`).
    Source,
    Kickstart,
    Inventory,
    Plan,
    /// Every host component of local media hashed before the first write.
    Media,
    /// The DPU payload packed and hashed before the first write.
    DpuStage,
    Dpu,
    /// The target opened for writing.
    Open,
    Partition,
    Bootloader,
    Bootbank,
    Verify,
    Bootcfg,
    Post,
    Report,
}

impl StepId {
    pub fn as_str(self) -> &'static str {
        match self {
            StepId::Source => "source",
            StepId::Kickstart => "kickstart",
            StepId::Inventory => "inventory",
            StepId::Plan => "plan",
            StepId::Media => "media",
            StepId::DpuStage => "dpu-stage",
            StepId::Dpu => "dpu",
            StepId::Open => "open",
            StepId::Partition => "partition",
            StepId::Bootloader => "bootloader",
            StepId::Bootbank => "bootbank",
            StepId::Verify => "verify",
            StepId::Bootcfg => "bootcfg",
            StepId::Post => "post",
            StepId::Report => "report",
        }
    }
}

impl std::fmt::Display for StepId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    StepStarted {
        step: StepId,
        description: String,
        total_bytes: Option<u64>,
    },
    Progress {
        step: StepId,
        done_bytes: u64,
        total_bytes: u64,
        percent: f64,
    },
    StepFinished {
        step: StepId,
        elapsed_ms: u64,
    },
    Warning {
        step: StepId,
        message: String,
    },
    /// What a device said along the way (a DPU's install log line, a devlink status).
    Status {
        step: StepId,
        message: String,
    },
    /// A finding of the kickstart (`FILE:LINE:COL`, its severity, the message and a hint).
    Diagnostic(crate::kickstart::Diagnostic),
    /// A line a `%pre` or `%post` script printed (stdout and stderr together).
    ScriptOutput {
        section: String,
        /// Where the script is in the kickstart (`ks.cfg:12`).
        at: String,
        line: String,
    },
    /// How a script ended: its exit status, a timeout, a missing interpreter.
    ScriptEnded {
        section: String,
        at: String,
        ok: bool,
        status: String,
    },
    Failed {
        step: StepId,
        message: String,
        exit_code: u8,
    },
    Finished {
        exit_code: u8,
        elapsed_ms: u64,
    },
}

pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

/// Shows nothing (`--progress none`).
pub struct Quiet;

impl EventSink for Quiet {
    fn emit(&self, _event: Event) {}
}

/// One JSON object per line (`--progress json`), to any writer (stdout by default).
pub struct JsonLines<W: Write + Send> {
    out: Mutex<W>,
    /// Progress events are thinned to one per this many bytes per step, to keep the stream small.
    every_bytes: u64,
    last: Mutex<std::collections::HashMap<StepId, u64>>,
}

impl<W: Write + Send> JsonLines<W> {
    pub fn new(out: W) -> Self {
        JsonLines {
            out: Mutex::new(out),
            every_bytes: 16 << 20,
            last: Mutex::new(Default::default()),
        }
    }
}

impl<W: Write + Send> EventSink for JsonLines<W> {
    fn emit(&self, event: Event) {
        if let Event::Progress {
            step,
            done_bytes,
            total_bytes,
            ..
        } = &event
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let prev = last.entry(*step).or_insert(0);
            if *done_bytes < *total_bytes && *done_bytes < prev.saturating_add(self.every_bytes) {
                return;
            }
            *prev = *done_bytes;
        }
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(line) = serde_json::to_string(&event) {
            // A closed pipe must not stop an install: the events are advisory.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// Warnings through the log (stderr, `[WARN ...]`), for the sinks that do not print them
/// themselves (`--progress none`, `json`, and `auto` off a terminal). [`Bars`] prints its own:
/// a warning is shown once either way.
pub struct LogWarnings;

impl EventSink for LogWarnings {
    fn emit(&self, event: Event) {
        if let Event::Warning { step, message } = event {
            log::warn!("{step}: {message}");
        }
    }
}

/// A bar per step on a terminal (indicatif); plain lines when stderr is not a terminal.
pub struct Bars {
    multi: indicatif::MultiProgress,
    bars: Mutex<std::collections::HashMap<StepId, indicatif::ProgressBar>>,
    /// stderr is not a terminal: plain lines instead of bars (indicatif draws nothing there),
    /// with each step's last quarter of its bytes printed.
    plain: Option<Mutex<std::collections::HashMap<StepId, u64>>>,
}

impl Default for Bars {
    fn default() -> Self {
        use std::io::IsTerminal;
        Bars::new(!std::io::stderr().is_terminal())
    }
}

/// Every bar and spinner starts with its step's name.
const BAR_TEMPLATE: &str = "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}";
const SPINNER_TEMPLATE: &str = "{prefix:>10} {spinner} {msg}";

impl Bars {
    /// `plain`: lines on stderr instead of bars.
    pub fn new(plain: bool) -> Bars {
        Bars {
            multi: indicatif::MultiProgress::new(),
            bars: Mutex::new(Default::default()),
            plain: plain.then(|| Mutex::new(Default::default())),
        }
    }

    /// The plain-lines form of an event (stderr is not a terminal).
    fn plain_line(quarters: &Mutex<std::collections::HashMap<StepId, u64>>, event: Event) {
        let line = match event {
            Event::StepStarted {
                step,
                description,
                total_bytes,
            } => match total_bytes {
                Some(n) => format!("{step}: {description} ({n} bytes)"),
                None => format!("{step}: {description}"),
            },
            Event::Progress {
                step,
                done_bytes,
                total_bytes,
                percent,
            } => {
                let quarter = if total_bytes == 0 {
                    4
                } else {
                    u64::try_from(u128::from(done_bytes) * 4 / u128::from(total_bytes))
                        .unwrap_or(4)
                        .min(4)
                };
                let mut q = quarters.lock().unwrap_or_else(|p| p.into_inner());
                let last = q.entry(step).or_insert(0);
                if quarter <= *last {
                    return;
                }
                *last = quarter;
                format!("{step}: {percent}% ({done_bytes} of {total_bytes} bytes)")
            }
            Event::StepFinished { step, elapsed_ms } => {
                format!("{step}: done in {:.1}s", elapsed_ms as f64 / 1000.0)
            }
            Event::Warning { step, message } => format!("warning: {step}: {message}"),
            Event::Status { step, message } => format!("{step}: {message}"),
            Event::Failed { step, message, .. } => format!("error: {step}: {message}"),
            // Said on stderr by the caller's own lines, in every progress mode.
            Event::Diagnostic(_)
            | Event::ScriptOutput { .. }
            | Event::ScriptEnded { .. }
            | Event::Finished { .. } => return,
        };
        eprintln!("{line}");
    }
}

impl EventSink for Bars {
    fn emit(&self, event: Event) {
        if let Some(quarters) = &self.plain {
            Bars::plain_line(quarters, event);
            return;
        }
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::StepStarted {
                step,
                description,
                total_bytes,
            } => {
                let (bar, template) = match total_bytes {
                    Some(n) => (indicatif::ProgressBar::new(n), BAR_TEMPLATE),
                    None => (indicatif::ProgressBar::new_spinner(), SPINNER_TEMPLATE),
                };
                let bar = self.multi.add(bar);
                if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_prefix(step.as_str());
                bar.set_message(description);
                bars.insert(step, bar);
            }
            Event::Progress {
                step, done_bytes, ..
            } => {
                if let Some(b) = bars.get(&step) {
                    b.set_position(done_bytes);
                }
            }
            Event::StepFinished { step, elapsed_ms } => {
                if let Some(b) = bars.get(&step) {
                    b.finish_with_message(format!("done in {:.1}s", elapsed_ms as f64 / 1000.0));
                }
            }
            Event::Warning { step, message } => {
                let _ = self.multi.println(format!("warning: {step}: {message}"));
            }
            Event::Status { step, message } => match bars.get(&step) {
                Some(b) => b.set_message(message),
                None => {
                    let _ = self.multi.println(format!("{step}: {message}"));
                }
            },
            Event::Failed { step, message, .. } => {
                if let Some(b) = bars.get(&step) {
                    b.abandon_with_message("FAILED");
                }
                let _ = self.multi.println(format!("error: {step}: {message}"));
            }
            Event::Diagnostic(_)
            | Event::ScriptOutput { .. }
            | Event::ScriptEnded { .. }
            | Event::Finished { .. } => {}
        }
    }
}

/// Times a step and reports its start, progress and end.
pub struct Step<'a> {
    sink: &'a dyn EventSink,
    id: StepId,
    started: Instant,
    total: u64,
}

impl<'a> Step<'a> {
    pub fn start(
        sink: &'a dyn EventSink,
        id: StepId,
        description: impl Into<String>,
        total_bytes: Option<u64>,
    ) -> Step<'a> {
        sink.emit(Event::StepStarted {
            step: id,
            description: description.into(),
            total_bytes,
        });
        Step {
            sink,
            id,
            started: Instant::now(),
            total: total_bytes.unwrap_or(0),
        }
    }
    pub fn progress(&self, done_bytes: u64) {
        let percent = if self.total == 0 {
            100.0
        } else {
            (done_bytes as f64 * 100.0 / self.total as f64).min(100.0)
        };
        self.sink.emit(Event::Progress {
            step: self.id,
            done_bytes,
            total_bytes: self.total,
            percent: (percent * 10.0).round() / 10.0,
        });
    }
    pub fn warn(&self, message: impl Into<String>) {
        self.sink.emit(Event::Warning {
            step: self.id,
            message: message.into(),
        });
    }
    pub fn status(&self, message: impl Into<String>) {
        self.sink.emit(Event::Status {
            step: self.id,
            message: message.into(),
        });
    }
    pub fn finish(self) -> u64 {
        let elapsed_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.sink.emit(Event::StepFinished {
            step: self.id,
            elapsed_ms,
        });
        elapsed_ms
    }
    pub fn id(&self) -> StepId {
        self.id
    }
}
