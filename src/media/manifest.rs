//! The image manifest (`MANIFEST.JSON` at the media root): every component with its size,
//! SHA-256, platform and role. ESXi media carry this information inside `imgdb.tgz`, in VMware's
//! own formats; our media state it plainly so that every byte laid down can be verified.

use serde::{Deserialize, Serialize};

pub(crate) const MANIFEST_NAME: &str = "MANIFEST.JSON";
pub(crate) const FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// The host's x86_64 ESXi.
    X86_64,
    /// The DPU's Arm ESXi ("ESXio") of the same unified image.
    Esxio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The first entry of `boot.cfg` (`kernel=`).
    Kernel,
    /// A boot module (`modules=`): copied to the boot bank.
    Module,
    /// A bootloader file for the EFI System Partition (`esp_path` says where).
    Bootloader,
    /// Belongs on the DPU, not the host's boot bank.
    Dpu,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Path on the media, relative to its root, `/`-separated.
    pub path: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
    pub platform: Platform,
    pub role: Role,
    /// For bootloader files: the path on the EFI System Partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub esp_path: Option<String>,
    /// What vouches for `sha256`.
    #[serde(default)]
    pub coverage: Coverage,
}

/// What vouches for a component's size and SHA-256.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum Coverage {
    /// Our own `MANIFEST.JSON` (custom media).
    #[default]
    Manifest,
    /// A payload of a VIB in VMware's image database (`imgdb.tgz`).
    Vib { vib: String, payload: String },
    /// Nothing on the media: the SHA-256 is that of the bytes read when the media were opened
    /// (so the copy is the file that was looked at), and the file is listed as not covered.
    NotCovered,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// `8.0.3`
    pub version: String,
    /// `8.0.3-0.35.24280767`, as in `boot.cfg`'s `build=`.
    pub build: String,
    pub components: Vec<Component>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PathError {
    #[error("\"{0}\" is empty")]
    Empty(String),
    #[error("\"{0}\" is an absolute path; media paths are relative to the media root")]
    Absolute(String),
    #[error("\"{0}\" leaves the media (`..`)")]
    Escapes(String),
    #[error("\"{0}\" holds a character not allowed in a media path")]
    BadChar(String),
}

/// Check that `p` names a file inside the media: relative, no `..`, no `.`, no empty parts,
/// no backslashes or NULs (which would let a crafted manifest reach outside the tree).
pub(crate) fn check_relative(p: &str) -> Result<(), PathError> {
    if p.is_empty() {
        return Err(PathError::Empty(p.into()));
    }
    if p.starts_with('/') {
        return Err(PathError::Absolute(p.into()));
    }
    if p.contains('\\') || p.contains('\0') || p.chars().any(char::is_control) {
        return Err(PathError::BadChar(p.into()));
    }
    for part in p.split('/') {
        match part {
            "" | "." => return Err(PathError::Empty(p.into())),
            ".." => return Err(PathError::Escapes(p.into())),
            _ => {}
        }
    }
    Ok(())
}

/// A `boot.cfg` module reference (`/b.b00`) as a media path (`b.b00`): one leading `/` means the
/// media root; the rest must pass `check_relative`.
pub(crate) fn module_path(reference: &str) -> Result<String, PathError> {
    let p = reference.strip_prefix('/').unwrap_or(reference);
    check_relative(p)?;
    Ok(p.to_string())
}

impl Component {
    /// The file and what vouches for it, for messages: `s.v00 (VIB VMware_bootbank_esx-base_8.0.3-..., payload s)`.
    pub fn describe(&self) -> String {
        match &self.coverage {
            Coverage::Manifest => format!("{} (MANIFEST.JSON)", self.path),
            Coverage::Vib { vib, payload } => {
                format!("{} (VIB {vib}, payload {payload})", self.path)
            }
            Coverage::NotCovered => format!("{} (not covered by any VIB)", self.path),
        }
    }
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> anyhow::Result<Manifest> {
        let m: Manifest = serde_json::from_slice(bytes)?;
        anyhow::ensure!(
            m.format == FORMAT,
            "manifest format {} is not supported (we read {FORMAT})",
            m.format
        );
        for c in &m.components {
            check_relative(&c.path)?;
            if let Some(e) = &c.esp_path {
                check_relative(e)?;
            }
            anyhow::ensure!(
                c.sha256.len() == 64
                    && c.sha256
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "component {}: sha256 is not 64 lower-case hex digits",
                c.path
            );
            anyhow::ensure!(
                c.role != Role::Bootloader || c.esp_path.is_some(),
                "bootloader component {} has no esp_path",
                c.path
            );
        }
        Ok(m)
    }

    /// The component at a media path, compared without case (ISO9660 names are upper case).
    pub fn find(&self, path: &str) -> Option<&Component> {
        self.components
            .iter()
            .find(|c| c.path.eq_ignore_ascii_case(path))
    }

    pub fn dpu_components(&self) -> impl Iterator<Item = &Component> {
        self.components.iter().filter(|c| c.role == Role::Dpu)
    }

    /// `8.0.3` -> (8, 0, 3); missing parts are 0.
    pub(crate) fn version_triple(&self) -> Option<(u32, u32, u32)> {
        let mut it = self.version.split('.').map(|p| p.parse::<u32>());
        let major = it.next()?.ok()?;
        let minor = it.next().unwrap_or(Ok(0)).ok()?;
        let patch = it.next().unwrap_or(Ok(0)).ok()?;
        Some((major, minor, patch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_media_are_refused() {
        assert!(check_relative("s.v00").is_ok());
        assert!(check_relative("EFI/BOOT/BOOTX64.EFI").is_ok());
        assert_eq!(
            check_relative("../etc/shadow"),
            Err(PathError::Escapes("../etc/shadow".into()))
        );
        assert_eq!(
            check_relative("a/../../b"),
            Err(PathError::Escapes("a/../../b".into()))
        );
        assert!(matches!(
            check_relative("/etc/shadow"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(check_relative("a//b"), Err(PathError::Empty(_))));
        assert!(matches!(
            check_relative("a\\..\\b"),
            Err(PathError::BadChar(_))
        ));
        assert_eq!(module_path("/b.b00").unwrap(), "b.b00");
        assert!(module_path("//etc/passwd").is_err());
        assert!(module_path("/../x").is_err());
    }
}
