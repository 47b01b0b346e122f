//! The files of a request, first all in memory ([`Files`]), then written under the output
//! directory in the order they were made: nothing is written before every check passed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::request::Host;

/// What a written file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// `boot.cfg` for VMware's mboot (`loader: esxi`), the default one or a host's.
    BootCfg,
    /// A PXELINUX entry (`pxelinux.cfg/`), for BIOS.
    Pxelinux,
    /// `grub.cfg`, for a GRUB of one's own (UEFI PXE or HTTP boot).
    Grub,
    /// `boot.ipxe`, for iPXE.
    Ipxe,
    /// `grub/grub.cfg`, for Debian's signed network GRUB behind shim (Secure Boot on).
    ShimGrub,
    /// `http-boot.txt`: the UEFI HTTP-boot URL and how to build ksinstall.efi for it.
    HttpBoot,
    /// `ks/<aa-bb-cc-dd-ee-ff>.cfg`: a host's by-MAC kickstart (an `%include` of its own).
    Kickstart,
}

/// One file a request makes, before it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    /// Relative to the output directory, with `/` between names.
    pub path: String,
    pub role: Role,
    /// The MAC (`aa:bb:cc:dd:ee:ff`) of the host the file is for; None: for every other host.
    pub host: Option<String>,
    pub text: String,
}

/// The files in the order they are made.
#[derive(Debug, Default)]
pub(super) struct Files(pub Vec<File>);

impl Files {
    pub fn put(&mut self, path: impl Into<String>, role: Role, host: Option<&Host>, text: String) {
        self.0.push(File {
            path: path.into(),
            role,
            host: host.map(|h| h.mac.clone()),
            text,
        });
    }
}

/// One file written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The output directory joined with the file's relative path.
    pub path: PathBuf,
    pub role: Role,
    pub host: Option<String>,
}

/// A file or directory that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("creating {}", .dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Write `files` under `out`, creating the directories they need.
pub fn write(out: &Path, files: &[File]) -> Result<Vec<Written>, WriteError> {
    let mut written = Vec::new();
    for f in files {
        let path = out.join(&f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| WriteError::CreateDir {
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, &f.text).map_err(|source| WriteError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(Written {
            path,
            role: f.role,
            host: f.host.clone(),
        });
    }
    Ok(written)
}
