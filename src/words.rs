//! Shell-style words, shared by the kickstart and the kernel command line (a neutral module: both
//! stages use it, neither owns it). One physical line split into words the way Python's
//! `shlex.split(line, comments=True)`
//! does in POSIX mode, which is what ESXi's installer uses (../shared/spec/kickstart.md §1.1):
//! whitespace separates words; `'...'` keeps everything literally; `"..."` keeps everything but lets
//! `\` escape `"` and `\`; outside quotes `\` escapes any character; `#` outside quotes ends the
//! line, even in the middle of a word; adjacent quoted and bare parts join into one word.
//! Written with `nom` so each piece of that grammar is one small parser.

use nom::branch::alt;
use nom::bytes::complete::{is_not, tag, take_while};
use nom::character::complete::anychar;
use nom::combinator::{map, opt, recognize};
use nom::error::ErrorKind;
use nom::multi::many0;
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};

/// A word and the byte offset in the line where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub offset: usize,
}

/// Why a line could not be split, and the byte offset where the trouble starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub offset: usize,
    pub message: &'static str,
}

/// Python shlex's `whitespace`: vertical tab and form feed are word characters there.
const BLANK: &str = " \t\r\n";

fn is_blank(c: char) -> bool {
    BLANK.contains(c)
}

/// `'...'`: no escapes at all.
fn single_quoted(i: &str) -> IResult<&str, String> {
    map(
        delimited(tag("'"), take_while(|c| c != '\''), tag("'")),
        String::from,
    )
    .parse(i)
}

/// `"..."`: `\"` and `\\` are escapes; any other backslash stays literal (POSIX shlex).
fn double_quoted(i: &str) -> IResult<&str, String> {
    let escaped = preceded(tag("\\"), anychar).map(|c| match c {
        '"' | '\\' => c.to_string(),
        other => format!("\\{other}"),
    });
    let plain = map(is_not("\"\\"), String::from);
    delimited(tag("\""), many0(alt((plain, escaped))), tag("\""))
        .map(|parts| parts.concat())
        .parse(i)
}

/// `\x` outside quotes: the character itself.
fn escaped(i: &str) -> IResult<&str, String> {
    map(preceded(tag("\\"), anychar), String::from).parse(i)
}

fn bare(i: &str) -> IResult<&str, String> {
    map(
        recognize(take_while_nonempty(|c| {
            !is_blank(c) && !"'\"\\#".contains(c)
        })),
        String::from,
    )
    .parse(i)
}

/// A bare run where `#` is an ordinary character (`shlex.split(s)` without comments).
fn bare_with_hash(i: &str) -> IResult<&str, String> {
    map(
        recognize(take_while_nonempty(|c| {
            !is_blank(c) && !"'\"\\".contains(c)
        })),
        String::from,
    )
    .parse(i)
}

fn take_while_nonempty<F: Fn(char) -> bool>(f: F) -> impl Fn(&str) -> IResult<&str, &str> {
    move |i: &str| {
        let end = i.find(|c: char| !f(c)).unwrap_or(i.len());
        if end == 0 {
            Err(nom::Err::Error(nom::error::Error::new(
                i,
                ErrorKind::TakeWhile1,
            )))
        } else {
            Ok((&i[end..], &i[..end]))
        }
    }
}

/// One word: one or more adjacent parts.
fn word(i: &str, comments: bool) -> IResult<&str, String> {
    let piece = |i| {
        if comments {
            alt((single_quoted, double_quoted, escaped, bare)).parse(i)
        } else {
            alt((single_quoted, double_quoted, escaped, bare_with_hash)).parse(i)
        }
    };
    let (mut rest, first) = piece(i)?;
    let mut text = first;
    while let Ok((r, part)) = piece(rest) {
        text.push_str(&part);
        rest = r;
    }
    Ok((rest, text))
}

/// Where a `#` comment starts on a line, and whether it cut a word short (`abc#def`: the word is
/// `abc`), which is rarely what the author meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comment {
    pub offset: usize,
    pub in_word: bool,
}

/// A line split into words, and the comment that ended it, if any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Line {
    pub words: Vec<Word>,
    pub comment: Option<Comment>,
}

/// Split one line (without its line ending) into words.
pub fn split(line: &str) -> Result<Vec<Word>, LexError> {
    split_line(line).map(|l| l.words)
}

/// Split one line into words, and say where its comment starts.
pub(crate) fn split_line(line: &str) -> Result<Line, LexError> {
    split_words(line, true)
}

/// The same without comments, as `shlex.split(s)` reads the kernel command line: `#` is part
/// of a word there (`ks=http://host/ks.cfg#v2`).
pub(crate) fn split_without_comments(line: &str) -> Result<Vec<Word>, LexError> {
    split_words(line, false).map(|l| l.words)
}

fn split_words(line: &str, comments: bool) -> Result<Line, LexError> {
    let mut out = Line::default();
    let mut rest = line;
    loop {
        let after_word = rest;
        rest = rest.trim_start_matches(is_blank);
        if comments && rest.starts_with('#') {
            out.comment = Some(Comment {
                offset: line.len() - rest.len(),
                in_word: after_word.len() == rest.len() && !out.words.is_empty(),
            });
            return Ok(out);
        }
        if rest.is_empty() {
            return Ok(out);
        }
        let offset = line.len() - rest.len();
        match word(rest, comments) {
            Ok((r, text)) => {
                out.words.push(Word { text, offset });
                rest = r;
            }
            Err(_) => return Err(diagnose(line, offset)),
        }
    }
}

/// The word at `offset` did not parse: find out why, as shlex would say it.
fn diagnose(line: &str, offset: usize) -> LexError {
    let rest = &line[offset..];
    // Walk the word by hand to find the unterminated part.
    let mut pos = 0;
    while pos < rest.len() {
        let tail = &rest[pos..];
        let consumed = match opt(alt((single_quoted, double_quoted, escaped, bare))).parse(tail) {
            Ok((r, Some(_))) => tail.len() - r.len(),
            _ => 0,
        };
        if consumed == 0 {
            let message = match tail.chars().next() {
                Some('\\') => "no escaped character after `\\` (there is no line continuation)",
                _ => "no closing quotation",
            };
            return LexError {
                offset: offset + pos,
                message,
            };
        }
        pos += consumed;
    }
    LexError {
        offset,
        message: "cannot split this line into words",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        split(line).unwrap().into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn posix_shlex_cases() {
        assert_eq!(texts("keyboard 'US Default'"), ["keyboard", "US Default"]);
        assert_eq!(
            texts(r#"network --nameserver="a,b" x"#),
            ["network", "--nameserver=a,b", "x"]
        );
        assert_eq!(texts("rootpw abc#def ghi"), ["rootpw", "abc"]);
        assert_eq!(texts("a 'x#y' # c"), ["a", "x#y"]);
        assert_eq!(texts(r"a\ b c"), ["a b", "c"]);
        assert_eq!(texts(r#"x "a\"b\\c\d""#), ["x", r#"a"b\c\d"#]);
        assert_eq!(texts(r"x 'a\b'"), ["x", r"a\b"]);
        assert_eq!(texts(r#"x a"b c"d 'e'f"#), ["x", "ab cd", "ef"]);
        assert_eq!(texts(r#"x "" ''"#), ["x", "", ""]);
        assert_eq!(texts("   # only a comment"), Vec::<String>::new());
        assert_eq!(texts("a\tb\r"), ["a", "b"]);
        assert_eq!(texts("rootpw Pässwörd1!"), ["rootpw", "Pässwörd1!"]);
    }

    #[test]
    fn a_comment_that_cuts_a_word_is_told_apart_from_a_trailing_one() {
        let l = split_line("rootpw abc#def ghi").unwrap();
        assert_eq!(
            l.comment,
            Some(Comment {
                offset: 10,
                in_word: true
            })
        );
        let l = split_line("rootpw 'abc' # the password").unwrap();
        assert_eq!(
            l.comment,
            Some(Comment {
                offset: 13,
                in_word: false
            })
        );
        assert!(!split_line("# only").unwrap().comment.unwrap().in_word);
        assert_eq!(split_line("rootpw 'a#b'").unwrap().comment, None);
    }

    #[test]
    fn offsets_point_at_word_starts() {
        let w = split("  install  --disk=x").unwrap();
        assert_eq!((w[0].offset, w[1].offset), (2, 11));
    }

    #[test]
    fn unterminated_quote_and_trailing_backslash() {
        let e = split("rootpw 'abc").unwrap_err();
        assert_eq!((e.offset, e.message), (7, "no closing quotation"));
        let e = split(r#"x ab"cd"#).unwrap_err();
        assert_eq!(e.offset, 4);
        let e = split(r"install --disk=x \").unwrap_err();
        assert_eq!(e.offset, 17);
        assert!(e.message.contains("line continuation"));
    }
}
