//! `ksinstall install`: kickstart + hardware + media -> a disk ESXi boots.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use ksinstall::apply::{self, ApplyError};
use ksinstall::exit::Outcome;
use ksinstall::inventory::Inventory;
use ksinstall::kickstart::{self, ScriptKind};
use ksinstall::media::Media;
use ksinstall::plan::{self, Plan};
use ksinstall::report::{Bars, Event, EventSink, JsonLines, Quiet};
use ksinstall::source::cmdline::BootOptions;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    /// Bars on a terminal, nothing otherwise.
    Auto,
    Tty,
    Json,
    None,
}

/// Install ESXi as a kickstart says: plan everything, check everything, then write.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The kickstart file.
    #[arg(long, value_name = "FILE")]
    ks: PathBuf,
    /// The installation media: a directory (extracted ISO) or an http(s):// URL.
    #[arg(long, value_name = "DIR|URL")]
    media: String,
    /// Install to this block device or image file instead of the disk the kickstart chooses.
    #[arg(long, value_name = "DEV|IMG")]
    disk: Option<PathBuf>,
    /// Create the --disk image file (sparse) with this size if it does not exist: 40G, 512M, ...
    #[arg(long, value_name = "SIZE", requires = "disk")]
    disk_size: Option<String>,
    /// Logical sector size of an image file.
    #[arg(long, value_name = "BYTES", default_value_t = 512)]
    sector_size: u32,
    /// Where the hardware is read: sys/, dev/, proc/cmdline below this directory.
    #[arg(long, value_name = "DIR", default_value = "/")]
    sysroot: PathBuf,
    /// Boot options (kernel command line); default: proc/cmdline below the sysroot.
    #[arg(long, value_name = "STRING")]
    cmdline: Option<String>,
    /// Print the plan and write nothing to any disk (%pre still runs: it is part of reading the
    /// kickstart).
    #[arg(long)]
    dry_run: bool,
    /// Do not hash the whole local media before writing (it is still verified as it is written;
    /// a bad module then stops the install after the disk was partitioned, leaving it unbootable).
    #[arg(long)]
    skip_media_check: bool,
    /// How to show progress.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
    /// Write the final JSON report here.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

fn fail(sink: &dyn EventSink, step: &str, outcome: Outcome, message: &str) -> Outcome {
    sink.emit(Event::Failed {
        step: step.into(),
        message: message.into(),
        exit_code: outcome as u8,
    });
    eprintln!("ksinstall: error: {message}");
    outcome
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let sink: Box<dyn EventSink> = match a.progress {
        Progress::Json => Box::new(JsonLines::new(std::io::stdout())),
        Progress::Tty => Box::new(Bars::default()),
        Progress::Auto if std::io::stderr().is_terminal() && !a.dry_run => {
            Box::new(Bars::default())
        }
        _ => Box::new(Quiet),
    };
    let sink = sink.as_ref();

    // Boot options.
    let boot = match boot_options(&a.sysroot, a.cmdline.as_deref()) {
        Ok(b) => b,
        Err(e) => return Ok(fail(sink, "plan", Outcome::Precondition, &e)),
    };

    // The kickstart: %pre scripts run while it is read (not on a dry run).
    let bytes = std::fs::read(&a.ks).with_context(|| format!("reading {}", a.ks.display()))?;
    let key = std::fs::canonicalize(&a.ks)
        .unwrap_or_else(|_| a.ks.clone())
        .display()
        .to_string();
    let name = a.ks.display().to_string();
    // Includes are files of the installer's own file system (where %pre runs and writes), not
    // of the hardware sysroot; URLs are fetched now.
    let mut loader = ksinstall::source::fetch::InstallLoader {
        files: kickstart::FsLoader::new("/"),
    };
    let workdir = tempfile::tempdir().context("making a scratch directory for scripts")?;
    let mut runner = |s: &kickstart::Script| apply::scripts::run(s, workdir.path());
    let parsed = kickstart::parse(
        &name,
        &key,
        &bytes,
        &mut loader,
        // %pre runs on a dry run too: it is part of reading the kickstart (ESXi runs it for
        // `dryrun` as well), and it writes nothing to any disk we install to.
        Some(&mut runner),
    );
    for d in &parsed.diagnostics {
        eprintln!("{d}");
    }
    if parsed.has_errors() {
        let pre_failed = parsed
            .diagnostics
            .iter()
            .any(|d| d.message.starts_with("\"%pre\" script returned"));
        let outcome = if pre_failed {
            Outcome::Script
        } else {
            Outcome::InvalidKickstart
        };
        return Ok(fail(
            sink,
            "kickstart",
            outcome,
            &format!("{}: the kickstart has errors", a.ks.display()),
        ));
    }
    let ks = &parsed.kickstart;

    // Hardware and media.
    let inventory = match Inventory::read(&a.sysroot) {
        Ok(i) => i,
        Err(e) => {
            return Ok(fail(
                sink,
                "inventory",
                Outcome::Precondition,
                &format!("{e:#}"),
            ))
        }
    };
    let media = match Media::open(&a.media) {
        Ok(m) => m,
        Err(e) => return Ok(fail(sink, "media", Outcome::Media, &format!("{e:#}"))),
    };
    let mut created: Option<PathBuf> = None;
    if let (Some(disk), Some(size)) = (&a.disk, &a.disk_size) {
        if !disk.exists() && !a.dry_run {
            created = Some(disk.clone());
            let bytes = ksinstall::size::parse_size(size)?;
            let f = std::fs::File::create_new(disk)
                .with_context(|| format!("creating {}", disk.display()))?;
            f.set_len(bytes)
                .with_context(|| format!("sizing {}", disk.display()))?;
        } else if !disk.exists() {
            return Ok(fail(
                sink,
                "plan",
                Outcome::Precondition,
                &format!(
                    "{} does not exist (a dry run creates nothing)",
                    disk.display()
                ),
            ));
        }
    }

    // The plan: every check.
    let inputs = plan::Inputs {
        kickstart_name: &name,
        kickstart: ks,
        inventory: &inventory,
        sysroot: &a.sysroot,
        media: &media,
        boot: &boot,
        disk_override: a.disk.as_deref(),
        image_sector_size: a.sector_size,
    };
    let plan = match plan::make(&inputs) {
        Ok(p) => p,
        Err(e) => {
            // A refused install leaves nothing behind, not even the image it was to write.
            if let Some(p) = &created {
                let _ = std::fs::remove_file(p);
            }
            return Ok(fail(sink, "plan", e.outcome, &e.message));
        }
    };
    // Local media is read once in full before the first write, so a bad module never costs the
    // disk its old contents. Streamed (HTTP) media is verified as it is written.
    if media.is_local() && !a.skip_media_check {
        if let Err(e) = verify_media(&media, sink) {
            if let Some(p) = &created {
                let _ = std::fs::remove_file(p);
            }
            return Ok(fail(sink, "media", Outcome::Media, &format!("{e:#}")));
        }
    }
    if a.dry_run {
        if a.progress == Progress::Json {
            // One more JSON line in the event stream, so the output stays JSON lines.
            println!(
                "{}",
                serde_json::to_string(&json!({"event": "plan", "plan": plan}))?
            );
        } else {
            print!("{}", plan.text());
        }
        return Ok(Outcome::Success);
    }
    for w in &plan.warnings {
        sink.emit(Event::Warning {
            step: "plan".into(),
            message: w.clone(),
        });
        log::warn!("{w}");
    }

    // Apply, then %post.
    let result = apply::apply(&plan, &media, sink, &mut |_applied| Ok(()));
    let (outcome, applied, error) = match result {
        Ok(applied) => {
            let post = run_post(ks, workdir.path(), sink);
            match post {
                Ok(()) => (Outcome::Success, Some(applied), None),
                Err(e) => (e.outcome, Some(applied), Some(e)),
            }
        }
        Err(e) => (e.outcome, None, Some(e)),
    };
    if let Some(e) = &error {
        fail(sink, &e.step, e.outcome, &e.to_string());
    }
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Some(path) = &a.report {
        write_report(
            path,
            &plan,
            applied.as_ref(),
            error.as_ref(),
            outcome,
            elapsed_ms,
        )?;
    }
    sink.emit(Event::Finished {
        exit_code: outcome as u8,
        elapsed_ms,
    });
    if outcome == Outcome::Success && a.progress != Progress::Json {
        eprintln!(
            "ksinstall: installed ESXi {} on {} ({}) in {:.1}s",
            plan.media.build,
            plan.target.name,
            plan.target.path.display(),
            elapsed_ms as f64 / 1000.0
        );
    }
    Ok(outcome)
}

/// Hash every component of local media against its manifest, with progress: done before the
/// first write, so that a bad module never costs the disk its old contents.
pub(super) fn verify_media(media: &Media, sink: &dyn EventSink) -> anyhow::Result<()> {
    let total: u64 = media.manifest.components.iter().map(|c| c.size).sum();
    let step = ksinstall::report::Step::start(
        sink,
        "media",
        "checking every component of the media",
        Some(total),
    );
    media.verify_all(&mut |done| step.progress(done))?;
    step.finish();
    Ok(())
}

/// Boot options: the given command line, else `proc/cmdline` below the sysroot.
pub(super) fn boot_options(sysroot: &Path, cmdline: Option<&str>) -> Result<BootOptions, String> {
    let cmdline = match cmdline {
        Some(c) => c.to_string(),
        None => std::fs::read_to_string(sysroot.join("proc/cmdline")).unwrap_or_default(),
    };
    BootOptions::parse(&cmdline).map_err(|e| e.to_string())
}

fn run_post(
    ks: &kickstart::Kickstart,
    workdir: &Path,
    sink: &dyn EventSink,
) -> Result<(), ApplyError> {
    let posts: Vec<_> = ks
        .scripts
        .iter()
        .filter(|s| s.kind == ScriptKind::Post)
        .collect();
    if posts.is_empty() {
        return Ok(());
    }
    let step = ksinstall::report::Step::start(
        sink,
        "post",
        format!("{} %post script(s)", posts.len()),
        None,
    );
    for s in posts {
        if let Err(why) = apply::scripts::run(s, workdir) {
            if s.ignore_failure {
                step.warn(format!("{}: {why} (--ignorefailure=true)", s.span));
            } else {
                return Err(ApplyError {
                    step: "post".into(),
                    outcome: Outcome::Script,
                    message: format!("{}: User-supplied %post script failed: {why}", s.span),
                });
            }
        }
    }
    step.finish();
    Ok(())
}

fn write_report(
    path: &Path,
    plan: &Plan,
    applied: Option<&apply::Applied>,
    error: Option<&ApplyError>,
    outcome: Outcome,
    elapsed_ms: u64,
) -> anyhow::Result<()> {
    let report = json!({
        "ksinstall": env!("CARGO_PKG_VERSION"),
        "outcome": format!("{outcome:?}"),
        "exit_code": outcome as u8,
        "elapsed_ms": elapsed_ms,
        "kickstart": plan.kickstart,
        "media": plan.media,
        "target": plan.target,
        "partitions": plan.layout.partitions,
        "boot_cfg": plan.boot_cfg.render(),
        "host": plan.host,
        "dpus": plan.dpus,
        "files": applied.map(|a| &a.files),
        "timings": applied.map(|a| &a.timings),
        "bytes_written": applied.map(|a| a.bytes_written),
        "warnings": plan.warnings,
        "error": error.map(|e| json!({"step": e.step, "message": e.message})),
    });
    std::fs::write(path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing the report {}", path.display()))
}
