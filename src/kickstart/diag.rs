//! Diagnostics: every finding carries the file, line and column it is about.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A position in a kickstart file: 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Information that needs no change to the file: never fails `validate`, not even with
    /// `--strict`, and `paranoid` leaves it alone.
    Note,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Span,
    pub message: String,
    /// A guess at the fix, when we have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// A warning of ksinstall's own, for a mistake ESXi passes in silence: `paranoid` leaves it
    /// a warning (ESXi would not stop), `--strict` does not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lint: bool,
    /// The option a finding about a whole command is about (`netmask` for "network has no
    /// --netmask"), when its span is the command's rather than the option's: the console puts
    /// the finding by the field of that option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE:COL: error: MESSAGE`, and the hint on its own line in the same form, so that
    /// every printed line is self-contained for grep and editors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Note => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{}: {}: {}", self.span, sev, self.message)?;
        if let Some(h) = &self.help {
            write!(f, "\n{}: help: {}", self.span, h)?;
        }
        Ok(())
    }
}

/// Collects diagnostics in the order they are found.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub items: Vec<Diagnostic>,
}

impl Sink {
    pub fn push(&mut self, severity: Severity, span: &Span, message: impl Into<String>) {
        self.items.push(Diagnostic {
            severity,
            span: span.clone(),
            message: message.into(),
            help: None,
            lint: false,
            option: None,
        });
    }
    /// A warning of ksinstall's own (see [`Diagnostic::lint`]).
    pub fn lint(&mut self, span: &Span, message: impl Into<String>, help: Option<&str>) {
        self.warn(span, message);
        if let Some(d) = self.items.last_mut() {
            d.lint = true;
            d.help = help.map(String::from);
        }
    }
    pub fn note(&mut self, span: &Span, message: impl Into<String>) {
        self.push(Severity::Note, span, message);
    }
    pub fn warn(&mut self, span: &Span, message: impl Into<String>) {
        self.push(Severity::Warning, span, message);
    }
    pub fn error(&mut self, span: &Span, message: impl Into<String>) {
        self.push(Severity::Error, span, message);
    }
    /// Name the option the last diagnostic is about (see [`Diagnostic::option`]).
    pub(crate) fn about(&mut self, option: &str) {
        if let Some(d) = self.items.last_mut() {
            d.option = Some(option.to_string());
        }
    }
    /// Attach a hint to the last diagnostic.
    pub fn help(&mut self, help: impl Into<String>) {
        if let Some(d) = self.items.last_mut() {
            d.help = Some(help.into());
        }
    }
    pub(crate) fn warn_help(
        &mut self,
        span: &Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.warn(span, message);
        self.help(help);
    }
    pub(crate) fn error_help(
        &mut self,
        span: &Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.error(span, message);
        self.help(help);
    }
    /// Make the warning at `index` (an index into `items`) an error, adding `why` to its
    /// message: for a warning whose consequence turned out to be fatal, so that one problem
    /// stays one diagnostic. An error stays as it is: it already says enough.
    pub(crate) fn escalate(&mut self, index: usize, why: &str) {
        if let Some(d) = self.items.get_mut(index).filter(|d| !d.is_error()) {
            d.severity = Severity::Error;
            d.lint = false;
            d.message.push_str(why);
        }
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&w, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d > 0)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
