//! Running kickstart scripts on the installer: `%pre` while the kickstart is read, `%post` after
//! apply. busybox scripts run with `/bin/sh -l`, python ones with python3; a timeout kills the
//! script. Its output and how it ended are events (the CLI prints them on stderr in every
//! progress mode), and go into the report as a [`ScriptRecord`].

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::plan::ScriptPlan;
use crate::report::{Event, EventSink};

/// Why a script failed: the words go to the user and into the report.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("no interpreter for --interpreter={0}")]
    NoInterpreter(String),
    #[error("cannot write the script: {0}")]
    Write(std::io::Error),
    #[error("cannot make a log file: {0}")]
    Log(std::io::Error),
    #[error("cannot start {program}: {source}")]
    Start {
        program: String,
        source: std::io::Error,
    },
    #[error("{section} returned {status}")]
    Failed {
        section: &'static str,
        status: std::process::ExitStatus,
    },
    #[error("{section} did not finish within its --timeout of {secs}s")]
    Timeout { section: &'static str, secs: u64 },
    #[error("waiting for the script: {0}")]
    Wait(std::io::Error),
}

/// How one script ended, for the report (`scripts`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ScriptRecord {
    /// `%pre` or `%post`.
    pub section: String,
    /// Where it is in the kickstart (`ks.cfg:12`).
    pub at: String,
    pub ok: bool,
    /// `exit status: 0`, a timeout, an interpreter that is not there.
    pub status: String,
    /// Its stdout and stderr together (the last 64 KiB).
    pub output: String,
}

/// The most of a script's output kept in the report.
const OUTPUT_KEPT: usize = 64 << 10;

/// Run one script to completion, say its output and how it ended as events, and record both.
/// `Err` says why it failed (exit status, timeout, no interpreter).
pub fn run(
    script: &ScriptPlan,
    workdir: &Path,
    sink: &dyn EventSink,
    records: &mut Vec<ScriptRecord>,
) -> Result<(), ScriptError> {
    let mut output = String::new();
    let result = run_one(script, workdir, &mut output);
    let section = script.kind.section();
    for line in output.lines() {
        sink.emit(Event::ScriptOutput {
            section: section.to_string(),
            at: script.at.clone(),
            line: line.to_string(),
        });
    }
    let status = match &result {
        Ok(s) => s.clone(),
        Err(why) => why.to_string(),
    };
    sink.emit(Event::ScriptEnded {
        section: section.to_string(),
        at: script.at.clone(),
        ok: result.is_ok(),
        status: status.clone(),
    });
    let cut = output.len().saturating_sub(OUTPUT_KEPT);
    let cut = (cut..=output.len())
        .find(|i| output.is_char_boundary(*i))
        .unwrap_or(output.len());
    records.push(ScriptRecord {
        section: section.to_string(),
        at: script.at.clone(),
        ok: result.is_ok(),
        status,
        output: output[cut..].to_string(),
    });
    result.map(|_| ())
}

/// Run it; `Ok` is the exit status said as text. `output` gets what it printed.
fn run_one(
    script: &ScriptPlan,
    workdir: &Path,
    output: &mut String,
) -> Result<String, ScriptError> {
    let program = script
        .program
        .as_deref()
        .ok_or_else(|| ScriptError::NoInterpreter(script.interpreter.clone()))?;
    let mut file = tempfile::Builder::new()
        .prefix("ks-script-")
        .tempfile_in(workdir)
        .map_err(ScriptError::Write)?;
    file.write_all(script.body.as_bytes())
        .map_err(ScriptError::Write)?;
    // Output goes to a file, not a pipe: a script that prints more than a pipe holds would
    // otherwise block until its timeout.
    let log = tempfile::tempfile_in(workdir).map_err(ScriptError::Log)?;
    let log_err = log.try_clone().map_err(ScriptError::Log)?;
    let mut cmd = Command::new(program);
    if script.login_shell {
        cmd.arg("-l");
    }
    let mut child = cmd
        .arg(file.path())
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().map_err(ScriptError::Log)?))
        .stderr(Stdio::from(log_err))
        .spawn()
        .map_err(|source| ScriptError::Start {
            program: program.to_string(),
            source,
        })?;
    let started = Instant::now();
    let limit = script.timeout_secs.map(Duration::from_secs);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                use std::io::{Read, Seek};
                let mut bytes = Vec::new();
                let mut log = log;
                let _ = log
                    .rewind()
                    .and_then(|_| log.take(1 << 20).read_to_end(&mut bytes));
                *output = String::from_utf8_lossy(&bytes).into_owned();
                return if status.success() {
                    Ok(status.to_string())
                } else {
                    Err(ScriptError::Failed {
                        section: script.kind.section(),
                        status,
                    })
                };
            }
            Ok(None) => {
                if limit.is_some_and(|l| started.elapsed() > l) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ScriptError::Timeout {
                        section: script.kind.section(),
                        secs: script.timeout_secs.unwrap_or(0),
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(ScriptError::Wait(e)),
        }
    }
}
