//! The kickstart stage: ESXi `ks.cfg` read exactly as ESXi 8's installer reads it, checked
//! against the whole grammar, and turned into a typed `Kickstart` with a span on every command.
//!
//! `crate::words` (nom, one physical line) -> `reader` (sections, includes, evaluation order) ->
//! `args` (the `grammar` table) -> `build` (typed rules) -> global checks here.
//! Facts: ../shared/spec/kickstart.md. Choices where the spec is UNCONFIRMED: docs/KICKSTART.md.

mod args;
mod build;
pub mod diag;
pub mod grammar;
mod host;
pub mod model;
pub mod password;
mod printer;
pub mod reader;
pub mod template;

use std::path::{Path, PathBuf};

pub use build::{esxi_only_message, esxi_only_use};
pub use diag::{Diagnostic, Severity, Span};
pub use host::UPGRADE_CHECKS;
pub use model::*;
pub use printer::print;
pub use reader::{IncludeLoader, IncludeTarget, Loaded, PreFailure, PreRunner};

/// A kickstart read and checked: the model (meaningful when there is no error) and every
/// diagnostic, sorted by file and position.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Parsed {
    pub kickstart: Kickstart,
    pub diagnostics: Vec<Diagnostic>,
    /// Every file read, the top one first.
    pub files: Vec<String>,
}

impl Parsed {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
    pub fn has_warnings(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Warning)
    }

    /// Add notes saying what `install` will check on the target host, or refuse there, that no
    /// offline reading can decide (`upgrade`, `installorupgrade` on a disk holding ESXi, the disk
    /// `--firstdisk` picks, includes a `%pre` script writes). For `validate`: `install` itself
    /// does the checks. Only for a kickstart without errors, which `install` would refuse anyway.
    pub fn add_host_notes(&mut self) {
        if self.has_errors() {
            return;
        }
        self.diagnostics.extend(host::notes(&self.kickstart));
        sort(&mut self.diagnostics, &self.files);
    }
}

/// By file (in the order read), line and column; the order found otherwise.
fn sort<F: AsRef<str>>(items: &mut [Diagnostic], files: &[F]) {
    let rank = |f: &str| {
        files
            .iter()
            .position(|o| o.as_ref() == f)
            .unwrap_or(usize::MAX)
    };
    items.sort_by(|a, b| {
        (rank(&a.span.file), a.span.line, a.span.col).cmp(&(
            rank(&b.span.file),
            b.span.line,
            b.span.col,
        ))
    });
}

/// Read a kickstart whose top file is already in memory. `key` identifies it for include-cycle
/// detection (a canonical path or URL); includes go through `loader`; `%pre` scripts are handed
/// to `pre_runner` as ESXi runs them (before includes are read), or not run at all when `None`.
pub fn parse<'a>(
    name: &str,
    key: &str,
    bytes: &[u8],
    loader: &'a mut dyn IncludeLoader,
    pre_runner: Option<PreRunner<'a>>,
) -> Parsed {
    let mut builder = build::Builder::default();
    let mut reader = reader::Reader::new(loader, pre_runner);
    reader.run(name, key, bytes, &mut builder);
    let mut sink = std::mem::take(&mut reader.sink);
    let ks = builder.ks.clone();
    let top = Span {
        file: name.into(),
        line: 1,
        col: 1,
    };
    if !reader.aborted && !reader.pending {
        let written = Written {
            seen: &|c| builder.seen(c) || reader.broken.contains(c),
            misspelled: &reader.misspelled,
        };
        global_checks(&ks, &written, &top, &mut sink);
    }
    if ks.paranoid.is_some() {
        for d in sink
            .items
            .iter_mut()
            .filter(|d| d.severity == Severity::Warning && !d.lint)
        {
            d.severity = Severity::Error;
            d.message.push_str(" (paranoid: warnings are errors)");
        }
    }
    sort(&mut sink.items, &reader.files);
    Parsed {
        kickstart: ks,
        diagnostics: sink.items,
        files: reader.files.iter().map(|f| f.to_string()).collect(),
    }
}

/// What the file wrote, for the global checks.
struct Written<'a> {
    /// The commands written, even those whose errors kept them out of the model (or whose line
    /// could not be split), so that nothing is reported twice.
    seen: &'a dyn Fn(&str) -> bool,
    /// Unknown commands that were probably meant to be these, with their warnings' indexes.
    misspelled: &'a std::collections::HashMap<&'static str, usize>,
}

impl Written<'_> {
    /// A required command is missing: when an unknown command was probably meant to be it, that
    /// warning becomes the error (one problem, one diagnostic); otherwise report at the top.
    fn require(
        &self,
        names: &[&str],
        top: &Span,
        message: &str,
        help: &str,
        sink: &mut diag::Sink,
    ) {
        if names.iter().any(|c| (self.seen)(c)) {
            return;
        }
        match names.iter().find_map(|c| self.misspelled.get(c)) {
            Some(&i) => sink.escalate(i, &format!(": {message}")),
            None => sink.error_help(top, message, help),
        }
    }
}

/// The checks that need the whole kickstart (spec §1.1 `postValidate`). Skipped while an include
/// is pending, since the commands it holds are unknown.
fn global_checks(ks: &Kickstart, w: &Written, top: &Span, sink: &mut diag::Sink) {
    let upgrading = matches!(&ks.action, Some(a) if a.kind == ActionKind::Upgrade);
    let seen = w.seen;
    if !upgrading {
        w.require(
            &["vmaccepteula"],
            top,
            "the EULA is not accepted: vmaccepteula is required",
            "add a line `vmaccepteula`",
            sink,
        );
        w.require(
            &["rootpw"],
            top,
            "rootpw is required",
            "add `rootpw --iscrypted HASH` (e.g. from `openssl passwd -6`) or `rootpw 'PASSWORD'`",
            sink,
        );
    }
    w.require(
        &grammar::ACTION_COMMANDS,
        top,
        "one of install, upgrade or installorupgrade is required",
        "e.g. `install --firstdisk --overwritevmfs`",
        sink,
    );
    if let Some(a) = &ks.action {
        let needs_install = ks
            .clearpart
            .iter()
            .map(|c| ("clearpart", &c.span))
            .chain(ks.parts.iter().map(|p| ("part", &p.span)))
            .chain(ks.partition_embed.iter().map(|s| ("partitionembed", s)));
        for (what, span) in needs_install {
            if a.kind != ActionKind::Install {
                sink.error(
                    span,
                    format!("{what} requires install, not {}", a.kind.command()),
                );
            }
        }
    }
    if !seen("network") && !upgrading {
        sink.warn(top, "network command not specified. Defaulting to DHCP.");
    }
}

/// Reads includes from the local file system: absolute installer paths below `root`, relative
/// ones next to the including file. URLs are deferred to the fetch stage.
pub struct FsLoader {
    pub root: PathBuf,
}

impl FsLoader {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsLoader { root: root.into() }
    }

    fn read(path: &Path, shown: String) -> Loaded {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key = std::fs::canonicalize(path)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| path.display().to_string());
                Loaded::File {
                    name: shown,
                    key,
                    bytes,
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Loaded::NotFound,
            Err(e) => Loaded::Failed(e.to_string()),
        }
    }
}

impl IncludeLoader for FsLoader {
    fn load(&mut self, target: &IncludeTarget) -> Loaded {
        match target {
            IncludeTarget::Installer(p) => {
                if p.split('/').any(|c| c == "..") {
                    return Loaded::Failed("`..` in an include path is not allowed".into());
                }
                let path = self.root.join(p.trim_start_matches('/'));
                Self::read(&path, path.display().to_string())
            }
            IncludeTarget::Relative(p) => Self::read(Path::new(p), p.clone()),
            IncludeTarget::Url(_) => Loaded::Deferred,
        }
    }
}

/// Read and check a kickstart file from disk without running anything (what `validate` does).
pub fn parse_file(path: &Path, root: &Path) -> std::io::Result<Parsed> {
    let bytes = std::fs::read(path)?;
    let key = std::fs::canonicalize(path)?.display().to_string();
    let mut loader = FsLoader::new(root);
    Ok(parse(
        &path.display().to_string(),
        &key,
        &bytes,
        &mut loader,
        None,
    ))
}
