//! Running kickstart scripts on the installer: `%pre` while the kickstart is read, `%post` after
//! apply. busybox scripts run with `/bin/sh -l`, python ones with python3; a timeout kills the
//! script; output goes to the log.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::plan::ScriptPlan;

/// Run one script to completion. `Err` says why it failed (exit status, timeout, no interpreter).
pub fn run(script: &ScriptPlan, workdir: &Path) -> Result<(), String> {
    let program = script
        .program
        .as_deref()
        .ok_or_else(|| format!("no interpreter for --interpreter={}", script.interpreter))?;
    let mut file = tempfile::Builder::new()
        .prefix("ks-script-")
        .tempfile_in(workdir)
        .map_err(|e| format!("cannot write the script: {e}"))?;
    file.write_all(script.body.as_bytes())
        .map_err(|e| format!("cannot write the script: {e}"))?;
    // Output goes to a file, not a pipe: a script that prints more than a pipe holds would
    // otherwise block until its timeout.
    let log = tempfile::tempfile_in(workdir).map_err(|e| format!("cannot make a log file: {e}"))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(program);
    if script.login_shell {
        cmd.arg("-l");
    }
    let mut child = cmd
        .arg(file.path())
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
        .stderr(Stdio::from(log_err))
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let started = Instant::now();
    let limit = script.timeout_secs.map(Duration::from_secs);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                use std::io::{Read, Seek};
                let mut text = String::new();
                let mut log = log;
                let _ = log
                    .rewind()
                    .and_then(|_| log.take(1 << 20).read_to_string(&mut text));
                for line in text.lines() {
                    log::info!("{} at line {}: {line}", script.kind.section(), script.line);
                }
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("{} returned {status}", script.kind.section()))
                };
            }
            Ok(None) => {
                if limit.is_some_and(|l| started.elapsed() > l) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{} did not finish within its --timeout of {}s",
                        script.kind.section(),
                        script.timeout_secs.unwrap_or(0)
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}
