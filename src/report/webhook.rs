//! Posting the event stream to a provisioning system as the install goes (`--report-url`), in
//! one of three shapes (docs/BOOT.md):
//!
//! - `json`: each event exactly as `--progress json` prints it;
//! - `curtin`: the events MAAS reads from curtin's webhook reporter: `start`/`finish` of
//!   `cmd-install` and of one `cmd-install/stage-<step>` per step, finishes with
//!   `SUCCESS`/`WARN`/`FAIL`;
//! - `ironic`: Ironic's agent heartbeats as its anaconda deploy interface sends them:
//!   `agent_status` `start`, then `end` or `error`.
//!
//! With `json`, the install's report (`--report`) follows the last event as
//! `{"event": "report", "report": {...}}` (docs/FLEET.md, *Collecting the reports*).
//!
//! Posts happen on a thread of their own, in order, each retried with backoff; a post that still
//! fails is logged and dropped. Reporting never fails or stalls an install.

use std::collections::HashSet;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::{Event, EventSink};
use crate::http::Http;
use crate::report::StepId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Json,
    Curtin,
    Ironic,
}

/// Tries per post while the receiver answers; once a post has failed every try, later posts get
/// one try each until one gets through, so a dead receiver costs little time.
const ATTEMPTS: u32 = 3;

/// What goes through the posting thread: an event, or (json only) the install's report.
enum Post {
    Event(Event),
    Report(Value),
}

pub struct Webhook {
    tx: Mutex<Option<mpsc::Sender<Post>>>,
    done: Mutex<Option<mpsc::Receiver<()>>>,
}

/// Turns events into the bodies one format posts. Keeps what a format needs to remember.
struct Shaper {
    format: ReportFormat,
    token: Option<String>,
    started: bool,
    warned_steps: HashSet<StepId>,
    any_warning: bool,
    last_failure: Option<String>,
    /// Per step, the last progress percentage posted (json: one post per 10 %).
    progress: std::collections::HashMap<StepId, f64>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn curtin(name: &str, event_type: &str, description: &str, result: Option<&str>) -> Value {
    let mut v = json!({
        "origin": "curtin",
        "name": name,
        "event_type": event_type,
        "description": description,
        "timestamp": now(),
        "level": match result { Some("FAIL") => "ERROR", Some("WARN") => "WARN", _ => "INFO" },
    });
    if let Some(r) = result {
        v["result"] = json!(r);
    }
    v
}

impl Shaper {
    fn new(format: ReportFormat, token: Option<String>) -> Shaper {
        Shaper {
            format,
            token,
            started: false,
            warned_steps: HashSet::new(),
            any_warning: false,
            last_failure: None,
            progress: Default::default(),
        }
    }

    fn ironic(&self, status: &str, message: &str) -> Value {
        json!({
            "callback_url": "",
            "agent_token": self.token.clone().unwrap_or_default(),
            "agent_status": status,
            "agent_status_message": message,
        })
    }

    fn bodies(&mut self, e: &Event) -> Vec<Value> {
        let mut out = Vec::new();
        match self.format {
            ReportFormat::Json => {
                // A script's lines are in the report's `scripts` (its output, up to a limit): one
                // post per line would queue thousands and delay `finished` past its deadline.
                // The kickstart's findings, one per line of it at most, are posted.
                if matches!(e, Event::ScriptOutput { .. }) {
                    return out;
                }
                if let Event::Progress { step, percent, .. } = e {
                    let last = self.progress.entry(*step).or_insert(-100.0);
                    if *percent < 100.0 && *percent < *last + 10.0 {
                        return out;
                    }
                    *last = *percent;
                }
                if let Ok(v) = serde_json::to_value(e) {
                    out.push(v);
                }
            }
            ReportFormat::Curtin => {
                if !self.started {
                    self.started = true;
                    out.push(curtin(
                        "cmd-install",
                        "start",
                        "ksinstall: installing ESXi",
                        None,
                    ));
                }
                let stage = |s: &StepId| format!("cmd-install/stage-{s}");
                match e {
                    Event::StepStarted {
                        step, description, ..
                    } => out.push(curtin(&stage(step), "start", description, None)),
                    Event::StepFinished { step, .. } => {
                        let result = if self.warned_steps.contains(step) {
                            "WARN"
                        } else {
                            "SUCCESS"
                        };
                        out.push(curtin(&stage(step), "finish", step.as_str(), Some(result)));
                    }
                    Event::Warning { step, .. } => {
                        self.warned_steps.insert(*step);
                        self.any_warning = true;
                    }
                    Event::Failed { step, message, .. } => {
                        out.push(curtin(&stage(step), "finish", message, Some("FAIL")))
                    }
                    Event::Finished { exit_code, .. } => {
                        let result = match (*exit_code, self.any_warning) {
                            (0, false) => "SUCCESS",
                            (0, true) => "WARN",
                            _ => "FAIL",
                        };
                        out.push(curtin(
                            "cmd-install",
                            "finish",
                            &format!("ksinstall: exit code {exit_code}"),
                            Some(result),
                        ));
                    }
                    Event::Progress { .. }
                    | Event::Status { .. }
                    | Event::Diagnostic(_)
                    | Event::ScriptOutput { .. }
                    | Event::ScriptEnded { .. } => {}
                }
            }
            ReportFormat::Ironic => {
                if !self.started {
                    self.started = true;
                    out.push(self.ironic("start", "Deployment starting (ksinstall)."));
                }
                match e {
                    Event::Failed { step, message, .. } => {
                        self.last_failure = Some(format!("{step}: {message}"))
                    }
                    Event::Finished { exit_code: 0, .. } => {
                        out.push(self.ironic("end", "Deployment completed successfully."))
                    }
                    Event::Finished { exit_code, .. } => {
                        let why = self
                            .last_failure
                            .clone()
                            .unwrap_or_else(|| "the install failed".into());
                        out.push(self.ironic(
                            "error",
                            &format!("Deployment failed (exit code {exit_code}): {why}"),
                        ));
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

impl Webhook {
    /// Start posting to `url`. `token` is Ironic's `agent_token`.
    pub fn start(url: &str, format: ReportFormat, token: Option<String>, http: Http) -> Webhook {
        let (tx, rx) = mpsc::channel::<Post>();
        let (done_tx, done_rx) = mpsc::channel();
        let url = url.to_string();
        std::thread::spawn(move || {
            let mut shaper = Shaper::new(format, token);
            let headers: Vec<(&str, String)> = match format {
                ReportFormat::Ironic => vec![("X-OpenStack-Ironic-API-Version", "1.72".into())],
                _ => Vec::new(),
            };
            let mut receiver_down = false;
            for post in rx {
                // The last event and the report are always tried in full: the receiver may
                // have been out of reach only for a while (a DPU's reset takes down a port the
                // route uses).
                let (last, bodies) = match post {
                    Post::Event(event) => (
                        matches!(event, Event::Finished { .. }),
                        shaper.bodies(&event),
                    ),
                    // Only the json shape has a place for it (curtin and Ironic would not
                    // know the body).
                    Post::Report(report) if format == ReportFormat::Json => {
                        (true, vec![json!({"event": "report", "report": report})])
                    }
                    Post::Report(_) => (true, Vec::new()),
                };
                for body in bodies {
                    let attempts = if receiver_down && !last { 1 } else { ATTEMPTS };
                    match http.post_json(&url, &headers, &body, attempts) {
                        Ok(()) => receiver_down = false,
                        Err(e) => {
                            receiver_down = true;
                            log::warn!("report not delivered, dropped: {e:#}");
                        }
                    }
                }
            }
            let _ = done_tx.send(());
        });
        Webhook {
            tx: Mutex::new(Some(tx)),
            done: Mutex::new(Some(done_rx)),
        }
    }

    /// Post the install's report (the JSON of `--report`) after the events, as
    /// `{"event": "report", "report": {...}}`, in the json shape only: what a receiver
    /// (`ksinstall report serve`) stores for `cluster check`.
    pub fn report(&self, report: Value) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = tx.send(Post::Report(report));
        }
    }

    /// Stop taking events and wait up to `within` for the queued posts to go out.
    pub fn close(&self, within: Duration) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(done) = self.done.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if done.recv_timeout(within).is_err() {
                log::warn!("reports still unsent after {within:?}; giving up on them");
            }
        }
    }
}

impl EventSink for Webhook {
    fn emit(&self, event: Event) {
        if let Some(tx) = self.tx.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = tx.send(Post::Event(event));
        }
    }
}

/// Shows events through several sinks (the terminal or JSON lines, and a webhook).
pub struct Tee<'a>(pub Vec<&'a dyn EventSink>);

impl EventSink for Tee<'_> {
    fn emit(&self, event: Event) {
        for s in &self.0 {
            s.emit(event.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_posts_how_a_script_ended_but_not_each_of_its_lines() {
        let mut s = Shaper::new(ReportFormat::Json, None);
        let line = Event::ScriptOutput {
            section: "%post".into(),
            at: "ks.cfg:9".into(),
            line: "hello".into(),
        };
        let ended = Event::ScriptEnded {
            section: "%post".into(),
            at: "ks.cfg:9".into(),
            ok: true,
            status: "exit status: 0".into(),
        };
        assert!(s.bodies(&line).is_empty());
        let posted = s.bodies(&ended);
        assert_eq!(posted.len(), 1);
        assert_eq!(posted[0]["event"], "script_ended");
    }

    #[test]
    fn json_posts_the_kickstarts_findings() {
        let mut s = Shaper::new(ReportFormat::Json, None);
        let finding = Event::Diagnostic(crate::kickstart::Diagnostic {
            severity: crate::kickstart::Severity::Warning,
            span: crate::kickstart::Span {
                file: "ks.cfg".into(),
                line: 3,
                col: 1,
            },
            message: "keyboard: unknown layout".into(),
            help: None,
            lint: false,
            option: None,
        });
        let posted = s.bodies(&finding);
        assert_eq!(posted.len(), 1, "{posted:?}");
        assert!(
            posted[0].to_string().contains("keyboard: unknown layout"),
            "{}",
            posted[0]
        );
    }

    #[test]
    fn curtin_marks_the_failed_step_and_the_install_fail() {
        let mut s = Shaper::new(ReportFormat::Curtin, None);
        let events = [
            Event::StepStarted {
                step: StepId::Bootbank,
                description: "modules".into(),
                total_bytes: Some(10),
            },
            Event::Failed {
                step: StepId::Bootbank,
                message: "k.b00: SHA-256 is 00, the manifest says 11".into(),
                exit_code: 4,
            },
            Event::Finished {
                exit_code: 4,
                elapsed_ms: 5,
            },
        ];
        let posted: Vec<Value> = events.iter().flat_map(|e| s.bodies(e)).collect();
        let short: Vec<(String, String, String)> = posted
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or("").to_string(),
                    p["event_type"].as_str().unwrap_or("").to_string(),
                    p["result"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let t = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(
            short,
            [
                t("cmd-install", "start", ""),
                t("cmd-install/stage-bootbank", "start", ""),
                t("cmd-install/stage-bootbank", "finish", "FAIL"),
                t("cmd-install", "finish", "FAIL"),
            ]
        );
        assert_eq!(posted[2]["level"], "ERROR");
        assert!(posted[2]["description"]
            .as_str()
            .is_some_and(|d| d.contains("k.b00: SHA-256")));
    }
}
