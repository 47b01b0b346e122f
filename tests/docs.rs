//! The repository stands alone: every link in README.md and docs/ resolves to a file the
//! repository holds, and nothing points outside it (`../shared`, which a clone does not have).

use std::path::{Path, PathBuf};

fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = vec![root.join("README.md"), root.join("firmware/README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            v.push(p);
        }
    }
    v.sort();
    v
}

/// The targets of the Markdown links `[text](target)` in `text` that are not URLs or anchors.
fn local_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split('#').next().unwrap_or("").trim();
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            out.push(target.to_string());
        }
    }
    out
}

#[test]
fn every_doc_link_resolves_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        assert!(
            !text.contains("../shared") && !text.contains("shared/spec"),
            "{} refers to ../shared, which a clone does not have",
            page.display()
        );
        for link in local_links(&text) {
            let dir = page.parent().unwrap();
            let target = dir.join(&link);
            let resolved = target
                .canonicalize()
                .unwrap_or_else(|e| panic!("{}: link {link}: {e}", page.display()));
            assert!(
                resolved.starts_with(&root),
                "{}: link {link} leaves the repository",
                page.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} links found");
}
