//! Kickstart test helpers shared by tests/kickstart.rs (the repository's own files) and
//! tests/corpus.rs (the real-world corpus kept outside the repository).

use std::path::{Path, PathBuf};

use ksinstall::kickstart::{self, Diagnostic, Parsed};

pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != "EXPECTED"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no files in {}", dir.display());
    v
}

/// Parse `text` written to a real file named `ks.cfg` in a fresh directory; absolute includes
/// are looked up below that directory.
pub fn parse_text(text: &str) -> (Parsed, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ks.cfg");
    std::fs::write(&path, text).unwrap();
    let p = kickstart::parse_file(&path, dir.path()).unwrap();
    (p, dir)
}

pub fn errors(p: &Parsed) -> Vec<&Diagnostic> {
    p.diagnostics.iter().filter(|d| d.is_error()).collect()
}

pub fn dump(p: &Parsed) -> String {
    p.diagnostics
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn without_spans(p: &Parsed) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("span");
                m.remove("accept_eula");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(&p.kickstart).unwrap();
    strip(&mut v);
    // A plain password is hashed with a fresh random salt each time; compare presence only
    // (print_then_parse checks that a hash survives printing unchanged).
    v["root_password"] = serde_json::Value::Bool(p.kickstart.root_password.is_some());
    // Keep presence of span-only commands comparable.
    v["accept_eula"] = serde_json::Value::Bool(p.kickstart.accept_eula.is_some());
    for k in ["paranoid", "dryrun", "partition_embed"] {
        v[k] = serde_json::Value::Bool(!v[k].is_null());
    }
    v
}

/// Printing a parsed kickstart and parsing it again gives the same model, and the printed
/// form is a fixed point; the root password stays hashed.
pub fn assert_round_trip(inputs: Vec<PathBuf>) {
    assert!(!inputs.is_empty());
    for f in inputs {
        let p = kickstart::parse_file(&f, Path::new("/nonexistent-root")).unwrap();
        let printed = kickstart::print(&p.kickstart);
        let (q, _d) = parse_text(&printed);
        assert!(
            !q.has_errors(),
            "{}: printed form has errors:\n{}\n{printed}",
            f.display(),
            dump(&q)
        );
        assert_eq!(
            without_spans(&p),
            without_spans(&q),
            "{}:\n{printed}",
            f.display()
        );
        // The canonical form is a fixed point.
        assert_eq!(kickstart::print(&q.kickstart), printed, "{}", f.display());
        // Printing keeps the root password hashed, and the hash reads back unchanged.
        if let Some(pw) = &p.kickstart.root_password {
            assert!(printed.contains(&format!("rootpw --iscrypted {}", pw.hash)));
            assert_eq!(
                q.kickstart.root_password.as_ref().map(|r| &r.hash),
                Some(&pw.hash)
            );
        }
    }
}

/// No Debug formatting and no doubled words in anything we say about `files`.
pub fn assert_messages_read_as_english(files: Vec<PathBuf>) {
    assert!(!files.is_empty());
    for f in files {
        let p = kickstart::parse_file(&f, Path::new("/nonexistent-root")).unwrap();
        for d in &p.diagnostics {
            let text = format!("{} {}", d.message, d.help.as_deref().unwrap_or(""));
            for bad in ["a a ", "the the ", "Some(", "None", "\\\"", "1 attempts"] {
                assert!(!text.contains(bad), "{bad:?} in {d}");
            }
        }
    }
}
