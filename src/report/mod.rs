//! Events and the final report. Every stage tells what it does through one small `EventSink`;
//! the sink decides how it is shown: progress bars on a terminal, JSON lines for machines, or
//! nothing. No stage depends on how events are shown.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

pub mod webhook;

/// One thing that happened. Step ids are stable: fleet tools key on them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    StepStarted {
        step: String,
        description: String,
        total_bytes: Option<u64>,
    },
    Progress {
        step: String,
        done_bytes: u64,
        total_bytes: u64,
        percent: f64,
    },
    StepFinished {
        step: String,
        elapsed_ms: u64,
    },
    Warning {
        step: String,
        message: String,
    },
    /// What a device said along the way (a DPU's install log line, a devlink status).
    Status {
        step: String,
        message: String,
    },
    Failed {
        step: String,
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
    last: Mutex<std::collections::HashMap<String, u64>>,
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
            let prev = last.entry(step.clone()).or_insert(0);
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

/// A bar per step on a terminal (indicatif); plain lines when stderr is not a terminal.
pub struct Bars {
    multi: indicatif::MultiProgress,
    bars: Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>,
}

impl Default for Bars {
    fn default() -> Self {
        Bars {
            multi: indicatif::MultiProgress::new(),
            bars: Mutex::new(Default::default()),
        }
    }
}

impl EventSink for Bars {
    fn emit(&self, event: Event) {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::StepStarted {
                step,
                description,
                total_bytes,
            } => {
                let bar = match total_bytes {
                    Some(n) => {
                        let b = self.multi.add(indicatif::ProgressBar::new(n));
                        if let Ok(style) = indicatif::ProgressStyle::with_template(
                            "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                        ) {
                            b.set_style(style.progress_chars("=> "));
                        }
                        b
                    }
                    None => self.multi.add(indicatif::ProgressBar::new_spinner()),
                };
                bar.set_prefix(step.clone());
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
            Event::Finished { .. } => {}
        }
    }
}

/// Times a step and reports its start, progress and end.
pub struct Step<'a> {
    sink: &'a dyn EventSink,
    id: String,
    started: Instant,
    total: u64,
}

impl<'a> Step<'a> {
    pub fn start(
        sink: &'a dyn EventSink,
        id: &str,
        description: impl Into<String>,
        total_bytes: Option<u64>,
    ) -> Step<'a> {
        sink.emit(Event::StepStarted {
            step: id.into(),
            description: description.into(),
            total_bytes,
        });
        Step {
            sink,
            id: id.into(),
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
            step: self.id.clone(),
            done_bytes,
            total_bytes: self.total,
            percent: (percent * 10.0).round() / 10.0,
        });
    }
    pub fn warn(&self, message: impl Into<String>) {
        self.sink.emit(Event::Warning {
            step: self.id.clone(),
            message: message.into(),
        });
    }
    pub fn status(&self, message: impl Into<String>) {
        self.sink.emit(Event::Status {
            step: self.id.clone(),
            message: message.into(),
        });
    }
    pub fn finish(self) -> u64 {
        let elapsed_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.sink.emit(Event::StepFinished {
            step: self.id.clone(),
            elapsed_ms,
        });
        elapsed_ms
    }
    pub fn id(&self) -> &str {
        &self.id
    }
}
