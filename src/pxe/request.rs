//! The request document of `ksinstall pxe` (`Request`, Serialize + Deserialize): what the files
//! boot, where the media and the kickstarts are, and one entry per host with its own kickstart.
//! The checks of its URLs and MAC addresses are here too, so the command line and a JSON
//! request are held to the same rules.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What the written files boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Loader {
    /// ksinstall's installer image (vmlinuz, initrd.img, ksinstall.efi): `ksinstall boot` runs.
    #[default]
    Ksinstall,
    /// VMware's installer (mboot with the media's boot.cfg), handed our kickstart with ks=.
    Esxi,
}

/// Everything `ksinstall pxe` needs, as one document (`ksinstall pxe` builds it from its
/// options; fleet tooling can write it as JSON). The options of the same name say what each
/// field means (docs/PXE.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// What the hosts boot.
    #[serde(default)]
    pub loader: Loader,
    /// `--image-url`: where vmlinuz, initrd.img and ksinstall.efi are served over HTTP; None:
    /// relative to the boot loader (TFTP). Only with `loader: ksinstall`.
    #[serde(default)]
    pub image_url: Option<String>,
    /// `--media`: the installation media (an extracted ISO) the TFTP/HTTP server serves.
    pub media: PathBuf,
    /// `--ks-url`: the kickstart of every host without an entry in `hosts`.
    pub ks_url: String,
    /// `--out`: where the files are written.
    pub out: PathBuf,
    /// `--host`: the hosts with their own kickstart.
    #[serde(default)]
    pub hosts: Vec<Host>,
    /// `--http-url`: the HTTP URL of the media directory (inst.repo=, or boot.cfg's prefix=).
    #[serde(default)]
    pub http_url: Option<String>,
    /// `--out-url`: the HTTP URL at which `out` is served (the by-MAC kickstarts).
    #[serde(default)]
    pub out_url: Option<String>,
    /// `--append`: more boot options for every host.
    #[serde(default)]
    pub append: String,
}

/// A host with its own kickstart. `mac` is read as `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`,
/// in either case; [`Host::new`] writes it as `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub mac: String,
    pub ks_url: String,
}

/// Which URL of a request is at fault, named by its command-line option in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UrlField {
    KsUrl,
    HttpUrl,
    ImageUrl,
    OutUrl,
}

impl UrlField {
    /// The option the field comes from: `--ks-url`, ...
    pub fn option(self) -> &'static str {
        match self {
            UrlField::KsUrl => "--ks-url",
            UrlField::HttpUrl => "--http-url",
            UrlField::ImageUrl => "--image-url",
            UrlField::OutUrl => "--out-url",
        }
    }

    /// How a message names the URL after the URL itself.
    fn noun(self) -> &'static str {
        match self {
            UrlField::KsUrl => "the kickstart URL",
            _ => "it",
        }
    }
}

/// What is wrong with a URL that goes into a boot option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UrlProblem {
    /// Not `http://` or `https://`: ESXi and the installer image fetch only those.
    NotHttp,
    /// A space or a quote: a boot option is one word of the kernel command line.
    NotOneWord,
}

/// A URL refused by [`check_url`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", self.describe("the kickstart URL"))]
pub struct UrlError {
    pub url: String,
    pub problem: UrlProblem,
}

impl UrlError {
    /// The message with `noun` naming the URL ("the kickstart URL", "it").
    pub(crate) fn describe(&self, noun: &str) -> String {
        match self.problem {
            UrlProblem::NotHttp => format!("{}: {noun} must be http:// or https://", self.url),
            UrlProblem::NotOneWord => format!("{}: no spaces or quotes in a boot option", self.url),
        }
    }

    /// The message naming the option the URL came from.
    pub(crate) fn for_field(&self, field: UrlField) -> String {
        format!("{} {}", field.option(), self.describe(field.noun()))
    }
}

/// A host entry refused by [`parse_host`] or [`Host::new`]. `given` is the entry as written
/// (`MAC=KS_URL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HostError {
    #[error("--host {given}: want MAC=KS_URL")]
    NotMacEqualsUrl { given: String },
    #[error("--host {given}: {mac} is not a MAC address (aa:bb:cc:dd:ee:ff)")]
    NotAMac { given: String, mac: String },
    #[error("--host {given}: {url}")]
    Url { given: String, url: UrlError },
}

/// A ks= URL must be one ESXi fetches, and one word of the kernel command line.
pub fn check_url(url: &str) -> Result<(), UrlError> {
    let problem = if !(url.starts_with("http://") || url.starts_with("https://")) {
        UrlProblem::NotHttp
    } else if url
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\'')
    {
        UrlProblem::NotOneWord
    } else {
        return Ok(());
    };
    Err(UrlError {
        url: url.to_string(),
        problem,
    })
}

/// `--host MAC=KS_URL` (also a clap `value_parser`).
pub fn parse_host(s: &str) -> Result<Host, HostError> {
    let (mac, url) = s
        .split_once('=')
        .ok_or_else(|| HostError::NotMacEqualsUrl {
            given: s.to_string(),
        })?;
    Host::checked(mac, url, s)
}

impl Host {
    /// A host entry with its MAC written as `aa:bb:cc:dd:ee:ff`, its MAC and URL checked.
    pub fn new(mac: &str, ks_url: &str) -> Result<Host, HostError> {
        Host::checked(mac, ks_url, &format!("{mac}={ks_url}"))
    }

    fn checked(mac: &str, url: &str, given: &str) -> Result<Host, HostError> {
        let mac = mac.trim().to_ascii_lowercase().replace('-', ":");
        let ok = mac.split(':').count() == 6
            && mac
                .split(':')
                .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(HostError::NotAMac {
                given: given.to_string(),
                mac,
            });
        }
        check_url(url).map_err(|url| HostError::Url {
            given: given.to_string(),
            url,
        })?;
        Ok(Host {
            mac,
            ks_url: url.to_string(),
        })
    }

    /// `01-aa-bb-cc-dd-ee-ff`: PXELINUX's per-MAC file name, and ESXi's per-MAC directory.
    pub fn pxe_name(&self) -> String {
        format!("01-{}", self.hyphens())
    }

    /// `aa-bb-cc-dd-ee-ff`: what the installer image puts for `@MAC@` in ks= (xtask/image/init).
    pub fn hyphens(&self) -> String {
        self.mac.replace(':', "-")
    }
}
