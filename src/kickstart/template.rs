//! Template placeholders left in a kickstart whose templating tool never ran: `{{ .Password }}`,
//! `<%= @pw %>`, `${ROOT_PW}`, `%PASSWORD%`, `@@password@@`. Such text is never a real value, and
//! installed literally it would become a root password anyone can read in the template.

/// A templating syntax we recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{{ ... }}`: Go `text/template`, Jinja, Mustache, Handlebars.
    Curly,
    /// `{% ... %}`: a Jinja statement.
    JinjaTag,
    /// `<% ... %>`, `<%= ... %>`: ERB, EJS.
    Erb,
    /// `${...}`: shell, Terraform, Packer.
    Dollar,
    /// `%NAME%`: batch files, MDT.
    Percent,
    /// `@@NAME@@`: Cobbler-style substitution tokens.
    AtAt,
}

impl Placeholder {
    /// The syntax, written the way the user will find it in the file.
    pub fn syntax(self) -> &'static str {
        match self {
            Placeholder::Curly => "`{{...}}`",
            Placeholder::JinjaTag => "`{%...%}`",
            Placeholder::Erb => "`<%...%>`",
            Placeholder::Dollar => "`${...}`",
            Placeholder::Percent => "`%...%`",
            Placeholder::AtAt => "`@@...@@`",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Placeholder::Curly => "a Go/Jinja template placeholder",
            Placeholder::JinjaTag => "a Jinja template tag",
            Placeholder::Erb => "an ERB/EJS template tag",
            Placeholder::Dollar => "a shell/Terraform variable",
            Placeholder::Percent => "a batch-style variable",
            Placeholder::AtAt => "a Cobbler-style substitution token",
        }
    }

    /// "looks like a Go/Jinja template placeholder `{{...}}`: the file was not rendered".
    pub fn explain(self) -> String {
        format!(
            "looks like {} {}: the file was not rendered",
            self.what(),
            self.syntax()
        )
    }
}

fn is_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `open ... close` with `close` after `open`: the offset of `open`.
fn paired(text: &str, open: &str, close: &str) -> Option<usize> {
    let start = text.find(open)?;
    text[start + open.len()..].contains(close).then_some(start)
}

/// `mark NAME mark` standing on its own (not inside a longer word such as `100%sure%`).
fn delimited_name(text: &str, mark: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(rel) = text.get(from..).and_then(|t| t.find(mark)) {
        let start = from + rel;
        let inner_start = start + mark.len();
        let rest = &text[inner_start..];
        let name_len = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
        let before_ok = !text[..start].chars().next_back().is_some_and(is_name);
        if name_len > 0 && rest[name_len..].starts_with(mark) {
            let end = inner_start + name_len + mark.len();
            let after_ok = !text[end..].chars().next().is_some_and(is_name);
            if before_ok && after_ok {
                return Some(start);
            }
        }
        from = inner_start;
    }
    None
}

fn first(
    found: impl IntoIterator<Item = (Option<usize>, Placeholder)>,
) -> Option<(usize, Placeholder)> {
    found
        .into_iter()
        .filter_map(|(at, p)| at.map(|a| (a, p)))
        .min_by_key(|(a, _)| *a)
}

/// The first complete placeholder in `text` (opening and closing marks both there) and the
/// byte offset where it starts. Strict enough for passwords: a random password rarely holds
/// both marks of a pair.
pub fn find(text: &str) -> Option<(usize, Placeholder)> {
    first([
        (paired(text, "{{", "}}"), Placeholder::Curly),
        (paired(text, "{%", "%}"), Placeholder::JinjaTag),
        (paired(text, "<%", "%>"), Placeholder::Erb),
        (
            text.find("${")
                .filter(|s| text[s + 2..].find('}').is_some_and(|e| e > 0)),
            Placeholder::Dollar,
        ),
        (delimited_name(text, "%"), Placeholder::Percent),
        (delimited_name(text, "@@"), Placeholder::AtAt),
    ])
}

/// Like [`find`], but an opening mark alone is enough: for a value already refused, where the
/// closing mark may have gone into the next word (`--esx={{ .Param "license" }}`).
pub(crate) fn find_open(text: &str) -> Option<(usize, Placeholder)> {
    find(text).or_else(|| {
        first([
            (text.find("{{"), Placeholder::Curly),
            (text.find("{%"), Placeholder::JinjaTag),
            (text.find("<%"), Placeholder::Erb),
            (text.find("${"), Placeholder::Dollar),
        ])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<Placeholder> {
        find(s).map(|(_, p)| p)
    }

    #[test]
    fn each_syntax_is_named() {
        assert_eq!(kind("{{.Password}}"), Some(Placeholder::Curly));
        assert_eq!(kind("{{ esxi_root_password }}"), Some(Placeholder::Curly));
        assert_eq!(kind("{% if x %}"), Some(Placeholder::JinjaTag));
        assert_eq!(kind("<%= @root_pw %>"), Some(Placeholder::Erb));
        assert_eq!(kind("${ROOT_PW}"), Some(Placeholder::Dollar));
        assert_eq!(kind("%password%"), Some(Placeholder::Percent));
        assert_eq!(kind("%HOSTNAME%.example.com"), Some(Placeholder::Percent));
        assert_eq!(kind("@@root_password@@"), Some(Placeholder::AtAt));
        assert_eq!(find("ab{{x}}"), Some((2, Placeholder::Curly)));
        assert!(Placeholder::Curly
            .explain()
            .contains("Go/Jinja template placeholder `{{...}}`: the file was not rendered"));
    }

    #[test]
    fn real_passwords_are_not_placeholders() {
        for pw in [
            "Change-Me-2day",
            "VMware1!",
            "100%sure%x",
            "50%-off%",
            "a{{b",
            "Pa$$w0rd!",
            "${}",
            "user@@host",
            "<%only-open",
            "%%",
            "@@@@",
        ] {
            assert_eq!(find(pw), None, "{pw}");
        }
        assert_eq!(find_open("{{"), Some((0, Placeholder::Curly)));
    }
}
