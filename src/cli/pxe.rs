//! `ksinstall pxe`: the files a PXE server needs to start the installer on many hosts
//! (docs/PXE.md). The options become a `ksinstall::pxe::Request`; the library checks it, makes
//! and writes the files (src/pxe/); this prints what was written and the warnings.

use std::path::PathBuf;

use anyhow::Result;
use ksinstall::exit::Outcome;
use ksinstall::pxe::{self, Loader};

/// Write the files that network-boot the installer image (or VMware's: --loader esxi) on many hosts.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What the hosts boot: ksinstall's installer image, or VMware's installer (mboot).
    #[arg(long, value_enum, default_value_t = Loader::Ksinstall)]
    loader: Loader,
    /// Where the installer image (vmlinuz, initrd.img, ksinstall.efi) is served over HTTP. Without
    /// it, the boot loaders fetch the image's files relative to their own (TFTP). Only with
    /// --loader ksinstall.
    #[arg(long, value_name = "URL")]
    image_url: Option<String>,
    /// The installation media (an extracted ISO) that the TFTP/HTTP server serves.
    #[arg(long, value_name = "DIR", required_unless_present = "request")]
    media: Option<PathBuf>,
    /// The kickstart for every host without a --host entry.
    #[arg(long, value_name = "URL", required_unless_present = "request")]
    ks_url: Option<String>,
    /// Where to write the files (may be the media directory itself).
    #[arg(long, value_name = "DIR", required_unless_present = "request")]
    out: Option<PathBuf>,
    /// A host's own kickstart: MAC=KS_URL (aa:bb:cc:dd:ee:ff or aa-bb-cc-dd-ee-ff). Repeatable.
    #[arg(long, value_name = "MAC=KS_URL")]
    host: Vec<String>,
    /// The HTTP URL the media directory is served at: the installer image's inst.repo=.
    /// With --loader esxi it becomes boot.cfg's prefix= (so mboot loads the modules over HTTP)
    /// and the base of the iPXE script's paths; without it the modules are loaded over TFTP.
    #[arg(long, value_name = "URL")]
    http_url: Option<String>,
    /// The HTTP URL at which --out is served. With it (--loader ksinstall) pxe writes
    /// ks/<aa-bb-cc-dd-ee-ff>.cfg for each --host (an `%include` of its kickstart), and
    /// http-boot.txt gives one ksinstall.efi build for all of them: ks=URL/ks/@MAC@.cfg, which
    /// the image fills in with the MAC of the NIC it brings up.
    #[arg(long, value_name = "URL")]
    out_url: Option<String>,
    /// More boot options for every host (e.g. "ip=10.0.0.5 netmask=255.255.255.0 inst.ks.sendmac").
    #[arg(long, value_name = "OPTIONS", default_value = "")]
    append: String,
    /// Read the whole request from a JSON document instead of the options above (its fields:
    /// docs/PXE.md).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["loader", "image_url", "media", "ks_url", "out", "host", "http_url", "out_url", "append"])]
    request: Option<PathBuf>,
}

/// Why the options make no request.
#[derive(Debug, thiserror::Error)]
enum RequestError {
    #[error(transparent)]
    Host(#[from] pxe::HostError),
    #[error("--request {}: {source}", .file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("--request {}: {source}", .file.display())]
    Json {
        file: PathBuf,
        source: serde_json::Error,
    },
}

impl Args {
    /// The request document these options stand for, or the one --request names.
    fn request(self) -> Result<pxe::Request, RequestError> {
        if let Some(file) = self.request {
            let text = std::fs::read(&file).map_err(|source| RequestError::Read {
                file: file.clone(),
                source,
            })?;
            return serde_json::from_slice(&text)
                .map_err(|source| RequestError::Json { file, source });
        }
        let hosts = self
            .host
            .iter()
            .map(|h| pxe::parse_host(h))
            .collect::<Result<_, _>>()?;
        Ok(pxe::Request {
            loader: self.loader,
            image_url: self.image_url,
            // clap requires these three without --request.
            media: self.media.unwrap_or_default(),
            ks_url: self.ks_url.unwrap_or_default(),
            out: self.out.unwrap_or_default(),
            hosts,
            http_url: self.http_url,
            out_url: self.out_url,
            append: self.append,
        })
    }
}

pub fn run(a: Args) -> Result<Outcome> {
    let request = match a.request() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ksinstall: error: {e}");
            return Ok(Outcome::UsageOrIo);
        }
    };
    let generated = match pxe::generate(&request) {
        Ok(g) => g,
        Err(e) => {
            let outcome = e.outcome();
            eprintln!("ksinstall: error: {:#}", anyhow::Error::from(e));
            return Ok(outcome);
        }
    };
    for f in &generated.files {
        println!("{}", f.path.display());
    }
    for w in &generated.warnings {
        eprintln!("ksinstall: warning: {w}");
    }
    if request.loader == Loader::Ksinstall {
        eprintln!("{}", pxe::FIRMWARE_GUIDE);
    }
    Ok(Outcome::Success)
}
