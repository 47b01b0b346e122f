//! `ksinstall media check SRC`: the install's media verification, without a target.

use ksinstall::exit::Outcome;
use ksinstall::media::{check, DirSource, HttpSource, MediaSource};

use super::Format;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Match every file the install would lay down to its VIB payload in the media's imgdb.tgz
    /// and check its size and SHA-256; list the files no VIB covers. SRC: an ISO image or CD,
    /// an extracted tree, or an http(s):// base URL. Exit 0: all verified; 4: a file is
    /// missing or bad, or the metadata is unreadable.
    Check(Args),
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The media: an ISO image or CD, a directory, or an http(s):// URL.
    src: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Check the VIB descriptors' signatures against this certificate (PEM or DER). Without it,
    /// signatures are reported as present but not checked.
    #[arg(long, value_name = "FILE")]
    trust_cert: Option<std::path::PathBuf>,
}

fn open(src: &str) -> anyhow::Result<Box<dyn MediaSource>> {
    use std::os::unix::fs::FileTypeExt;
    let path = std::path::Path::new(src);
    Ok(
        if src.starts_with("http://") || src.starts_with("https://") {
            let http = ksinstall::http::Http::new(Default::default())?;
            Box::new(HttpSource::new(src, http))
        } else if path.is_file()
            || std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
        {
            Box::new(ksinstall::media::iso::IsoSource::open(path)?)
        } else {
            Box::new(DirSource::new(src)?)
        },
    )
}

pub fn run(c: Command) -> anyhow::Result<Outcome> {
    let Command::Check(a) = c;
    let anchor = match &a.trust_cert {
        Some(p) => match ksinstall::media::signature::Anchor::load(p) {
            Ok(anchor) => Some(anchor),
            Err(e) => {
                eprintln!("ksinstall: {e:#}");
                return Ok(Outcome::UsageOrIo);
            }
        },
        None => None,
    };
    let report = open(&a.src).and_then(|s| Ok(check::check(s.as_ref(), anchor.as_ref())?));
    match report {
        Ok(r) => {
            match a.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&r)?),
                Format::Text => print!("{}", r.text()),
            }
            Ok(if r.ok() {
                Outcome::Success
            } else {
                Outcome::Media
            })
        }
        Err(e) => {
            match a.format {
                Format::Json => println!("{}", serde_json::json!({ "error": format!("{e:#}") })),
                Format::Text => eprintln!("ksinstall: {e:#}"),
            }
            Ok(Outcome::Media)
        }
    }
}
