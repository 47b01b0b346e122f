//! `rootpw`: the root password, plain (checked, then hashed) or `--iscrypted`; never shown.

use crate::kickstart::args::Args;
use crate::kickstart::diag::Sink;
use crate::kickstart::model::RootPassword;
use crate::kickstart::password::{self, crypt_form};
use crate::kickstart::reader::{Arg, Invocation};
use crate::kickstart::template;

/// Why a `#` in a password matters, said without showing the password.
const COMMENT_CUTS: &str = "the rest of the line after `#` is a comment: quote the password";
const QUOTE_HELP: &str = "e.g. rootpw 'my pass#word' (single quotes keep every character)";

/// A template placeholder where the root password should be (`rootpw {{.Password}}`): always an
/// error, whatever the password checks would say (`{{.Password}}` passes them all), so that a
/// file that was never rendered cannot install a root password anyone can read in the
/// template. Returns whether one was found. The words are joined again because the lexer
/// splits `{{ .Password }}` at its spaces; the copy is wiped when it goes.
pub(super) fn rootpw_placeholder(inv: &Invocation, sink: &mut Sink) -> bool {
    let words: Vec<&Arg> = inv
        .args
        .iter()
        .filter(|w| !w.text.eq_ignore_ascii_case("--iscrypted"))
        .collect();
    let mut joined = zeroize::Zeroizing::new(String::new());
    let mut starts = Vec::with_capacity(words.len());
    for w in &words {
        if !joined.is_empty() {
            joined.push(' ');
        }
        starts.push(joined.len());
        joined.push_str(&w.text);
    }
    let Some((at, p)) = template::find(&joined) else {
        return false;
    };
    let span = starts
        .iter()
        .rposition(|s| *s <= at)
        .and_then(|i| words.get(i))
        .map_or(&inv.span, |w| &w.span);
    sink.error_help(
        span,
        format!("the root password {}", p.explain()),
        "render the template with its tool first: ksinstall never installs a placeholder as the root password",
    );
    true
}

pub(super) fn rootpw(inv: &Invocation, a: &Args, sink: &mut Sink) -> Option<RootPassword> {
    let span = inv.span.clone();
    let Some(pw) = &a.positional else {
        let r = password::Refusal::Empty;
        match &inv.comment {
            Some(_) => sink.error_help(
                &span,
                format!("{}: {COMMENT_CUTS}", r.message()),
                QUOTE_HELP,
            ),
            None => {
                sink.error(&span, r.message());
                if let Some(h) = r.help() {
                    sink.help(h);
                }
            }
        }
        return None;
    };
    // `rootpw abc#def` sets `abc` on ESXi. Nobody writes a comment without a space before it,
    // so the author meant a password holding `#`: refused rather than installing another one.
    if let Some(c) = inv.comment.as_ref().filter(|c| c.in_word) {
        sink.error_help(
            &c.span,
            format!("the root password is cut short: {COMMENT_CUTS}"),
            QUOTE_HELP,
        );
        return None;
    }
    if a.has("iscrypted") {
        if crypt_form(&pw.text).is_none() {
            sink.error_help(
                &pw.span,
                "crypted password is not valid",
                "--iscrypted takes an MD5 ($1$...), SHA-512 ($6$salt$ with 86 characters) or 13-character DES crypt hash, e.g. from `openssl passwd -6`",
            );
            return None;
        }
        return Some(RootPassword {
            hash: pw.text.clone(),
            span,
        });
    }
    if let Err(r) = password::check_plain(&pw.text) {
        sink.error(&pw.span, r.message());
        if let Some(h) = r.help() {
            sink.help(h);
        }
        return None;
    }
    match password::sha512_crypt(&pw.text) {
        Ok(hash) => Some(RootPassword { hash, span }),
        Err(e) => {
            sink.error(&pw.span, format!("{e:#}"));
            None
        }
    }
}
