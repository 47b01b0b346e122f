//! The files a PXE server needs to start the installer on many hosts (`ksinstall pxe`,
//! docs/PXE.md), from one [`Request`] document. By default they boot ksinstall's installer image
//! (`cargo xtask image`, docs/IMAGE.md): an iPXE script, a GRUB `grub.cfg`, PXELINUX entries and
//! the UEFI HTTP-boot URL, each loading `vmlinuz` + `initrd.img` with `ks=`, `inst.repo=` and
//! `BOOTIF=` per host, and `grub/grub.cfg` for hosts with Secure Boot on (Debian's signed shim
//! and network GRUB) ([`image`]). `loader: esxi` writes VMware's way instead ([`esxi`]): a
//! `boot.cfg` whose `kernelopt` carries `ks=` (one per host under `01-<mac>/`), PXELINUX entries
//! for mboot.c32, GRUB and iPXE chaining mboot: VMware's installer then runs with our validated
//! kickstart.
//!
//! [`render`] checks the request and makes every file in memory; [`generate`] then writes them
//! ([`write`]) and says which file is for what ([`Generated`]).

mod esxi;
mod image;
mod request;
pub mod write;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit::Outcome;
use crate::media::Media;

pub use image::FIRMWARE_GUIDE;
pub use request::{
    check_url, parse_host, Host, HostError, Loader, Request, UrlError, UrlField, UrlProblem,
};
pub use write::{File, Role, WriteError, Written};

/// Why a request makes no files. Nothing is written unless every check passed (but for
/// [`PxeError::Write`], which stops at the first file that cannot be written).
#[derive(Debug, thiserror::Error)]
pub enum PxeError {
    /// A URL that cannot be a boot option.
    #[error("{}", .error.for_field(*.field))]
    Url { field: UrlField, error: UrlError },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("--loader ksinstall needs --http-url: the installer image reads the media over HTTP (inst.repo=)")]
    NeedsHttpUrl,
    /// The media cannot be opened; `message` says why, with its causes.
    #[error("{message}")]
    Media { media: PathBuf, message: String },
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl PxeError {
    /// The exit code of `ksinstall pxe` for this error.
    pub fn outcome(&self) -> Outcome {
        match self {
            PxeError::Media { .. } => Outcome::Media,
            _ => Outcome::UsageOrIo,
        }
    }
}

/// Something the files will not do that the request may have expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Warning {
    #[error("--image-url {url}: GRUB fetches only http://HOST[:PORT]/PATH (it has no TLS): grub.cfg loads vmlinuz and initrd.img from where GRUB itself was loaded")]
    GrubCannotFetchImage { url: String },
    #[error("{} has no mboot.c32: BIOS (PXELINUX) boot needs it next to boot.cfg", .media.display())]
    NoMboot { media: PathBuf },
}

/// The files of a request, made but not written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    pub files: Vec<File>,
    pub warnings: Vec<Warning>,
}

/// What [`generate`] wrote, in order, and its warnings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    pub files: Vec<Written>,
    pub warnings: Vec<Warning>,
}

fn check(field: UrlField, url: Option<&str>) -> Result<(), PxeError> {
    match url.map(check_url) {
        Some(Err(error)) => Err(PxeError::Url { field, error }),
        _ => Ok(()),
    }
}

/// Check `req` and make every file it asks for, in memory. Reads the media (their BOOT.CFG and
/// manifest, and which loader files they hold); writes nothing.
pub fn render(req: &Request) -> Result<Rendered, PxeError> {
    check(UrlField::KsUrl, Some(&req.ks_url))?;
    // The media URL goes into boot.cfg's prefix= and the iPXE script: one word, http(s) only.
    check(UrlField::HttpUrl, req.http_url.as_deref())?;
    let hosts = req
        .hosts
        .iter()
        .map(|h| Host::new(&h.mac, &h.ks_url))
        .collect::<Result<Vec<_>, _>>()?;
    let media = Media::open(&req.media.display().to_string()).map_err(|e| PxeError::Media {
        media: req.media.clone(),
        message: format!("{e:#}"),
    })?;
    let build = media.manifest.build.as_str();
    let extra = req.append.trim();
    let mut files = write::Files::default();
    let mut warnings = Vec::new();
    match req.loader {
        Loader::Esxi => {
            let boot = esxi::EsxiBoot {
                build,
                boot_cfg: &media.boot_cfg,
                media_dir: &req.media,
                base: req.http_url.as_deref().map(|u| u.trim_end_matches('/')),
                extra,
            };
            esxi::esxi_files(&boot, &req.ks_url, &hosts, &mut files);
            if !has_mboot(&req.media) {
                warnings.push(Warning::NoMboot {
                    media: req.media.clone(),
                });
            }
        }
        Loader::Ksinstall => {
            let repo = req.http_url.as_deref().ok_or(PxeError::NeedsHttpUrl)?;
            check(UrlField::ImageUrl, req.image_url.as_deref())?;
            check(UrlField::OutUrl, req.out_url.as_deref())?;
            let boot = image::ImageBoot {
                build,
                image: req.image_url.as_deref().map(|u| u.trim_end_matches('/')),
                repo: repo.trim_end_matches('/'),
                extra,
                out_url: req.out_url.as_deref().map(|u| u.trim_end_matches('/')),
            };
            if let Some(url) = boot.image.filter(|u| image::grub_http(u).is_none()) {
                warnings.push(Warning::GrubCannotFetchImage {
                    url: url.to_string(),
                });
            }
            image::image_files(&boot, &req.ks_url, &hosts, &mut files);
        }
    }
    Ok(Rendered {
        files: files.0,
        warnings,
    })
}

/// mboot.c32, which PXELINUX loads from beside boot.cfg, as the media spell it.
fn has_mboot(media: &Path) -> bool {
    media.join("mboot.c32").exists() || media.join("MBOOT.C32").exists()
}

/// Check `req`, make its files and write them under `req.out`.
pub fn generate(req: &Request) -> Result<Generated, PxeError> {
    let rendered = render(req)?;
    let files = write::write(&req.out, &rendered.files)?;
    Ok(Generated {
        files,
        warnings: rendered.warnings,
    })
}
