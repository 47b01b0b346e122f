//! Helpers the command families share.

use crate::kickstart::args::Args;
use crate::kickstart::diag::{Sink, Span};

/// A rule needs one of `options` and none is there. When one was given but refused, the
/// diagnostic that refused it is the one report (a warning becomes an error saying what that
/// broke); otherwise `message` is reported at `span`.
pub(super) fn needs(
    a: &Args,
    options: &[&str],
    span: &Span,
    message: &str,
    help: &str,
    sink: &mut Sink,
) {
    match options.iter().find_map(|o| a.refused(o)) {
        Some(i) => sink.escalate(i, &format!(": {message}")),
        None => {
            sink.error_help(span, message, help);
            if let [only] = options {
                sink.about(only);
            }
        }
    }
}

pub(super) fn split_list(v: &str, lower: bool) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if lower {
                s.to_lowercase()
            } else {
                s.to_string()
            }
        })
        .collect()
}
