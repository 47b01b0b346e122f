//! ESXi `boot.cfg`: the installer's (`BOOT.CFG` on the media) and a boot bank's.
//!
//! Syntax (VMware docs, ../shared/spec/layout.md §4): `key=value` lines, `#` comment lines, any
//! other line kept unchanged; `modules=` joined by ` --- `; `prefix=` is put in front of kernel and
//! module paths that do not start with `/` or `http://`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootCfg {
    pub bootstate: Option<u32>,
    pub title: Option<String>,
    pub timeout: Option<u32>,
    pub prefix: Option<String>,
    pub kernel: Option<String>,
    pub kernelopt: Option<String>,
    pub modules: Vec<String>,
    pub build: Option<String>,
    pub updated: Option<u64>,
    /// Lines we do not interpret, in order, kept as they were.
    pub other: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("boot.cfg line {line}: {message}")]
pub struct BootCfgError {
    pub line: usize,
    pub message: String,
}

impl BootCfg {
    pub fn parse(text: &str) -> Result<BootCfg, BootCfgError> {
        let mut cfg = BootCfg::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            let err = |message: String| BootCfgError {
                line: i + 1,
                message,
            };
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                cfg.other.push(line.to_string());
                continue;
            };
            let num = |v: &str| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| err(format!("{key}= wants a number, not \"{v}\"")))
            };
            match key.trim() {
                "bootstate" => {
                    cfg.bootstate = Some(
                        u32::try_from(num(value)?)
                            .map_err(|_| err("bootstate out of range".into()))?,
                    )
                }
                "title" => cfg.title = Some(value.to_string()),
                "timeout" => {
                    cfg.timeout = Some(
                        u32::try_from(num(value)?)
                            .map_err(|_| err("timeout out of range".into()))?,
                    )
                }
                "prefix" => cfg.prefix = Some(value.trim().to_string()),
                "kernel" => cfg.kernel = Some(value.trim().to_string()),
                "kernelopt" => cfg.kernelopt = Some(value.to_string()),
                "modules" => {
                    cfg.modules = value
                        .split(" --- ")
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(String::from)
                        .collect();
                }
                "build" => cfg.build = Some(value.trim().to_string()),
                "updated" => cfg.updated = Some(num(value)?),
                _ => cfg.other.push(line.to_string()),
            }
        }
        Ok(cfg)
    }

    /// Kernel and module paths with `prefix` applied, in boot order (kernel first).
    pub fn files(&self) -> Vec<String> {
        let prefix = self.prefix.as_deref().unwrap_or("");
        self.kernel
            .iter()
            .chain(self.modules.iter())
            .map(|m| {
                if m.starts_with('/') || m.starts_with("http://") || prefix.is_empty() {
                    m.clone()
                } else {
                    format!("{}/{}", prefix.trim_end_matches('/'), m)
                }
            })
            .collect()
    }

    /// The text in the order ESXi's installer writes a boot bank's `boot.cfg`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push_str(k);
                out.push('=');
                out.push_str(&v);
                out.push('\n');
            }
        };
        put("bootstate", self.bootstate.map(|v| v.to_string()));
        put("title", self.title.clone());
        put("timeout", self.timeout.map(|v| v.to_string()));
        put("prefix", self.prefix.clone());
        put("kernel", self.kernel.clone());
        put("kernelopt", self.kernelopt.clone());
        put(
            "modules",
            (!self.modules.is_empty()).then(|| self.modules.join(" --- ")),
        );
        put("build", self.build.clone());
        put("updated", self.updated.map(|v| v.to_string()));
        for l in &self.other {
            out.push_str(l);
            out.push('\n');
        }
        out
    }

    /// What ESXi's bootloader (safeboot) requires before it boots a bank: a non-empty `build`,
    /// `updated` > 0, `bootstate` 0 (or 2), a kernel. `None` when bootable.
    pub(crate) fn unbootable_reason(&self) -> Option<&'static str> {
        match () {
            _ if self.build.as_deref().is_none_or(|b| b.trim().is_empty()) => {
                Some("build= is empty")
            }
            _ if self.updated.unwrap_or(0) == 0 => Some("updated= is not above 0"),
            _ if !matches!(self.bootstate, Some(0) | Some(2)) => Some("bootstate= is not 0 or 2"),
            _ if self.kernel.as_deref().is_none_or(str::is_empty) => Some("kernel= is empty"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISO: &str = "bootstate=0\ntitle=Loading ESXi installer\ntimeout=5\nprefix=\nkernel=/b.b00\nkernelopt=runweasel cdromBoot\nmodules=/jumpstrt.gz --- /useropts.gz --- /k.b00\nbuild=8.0.3-0.35.24280767\nupdated=0\n";

    #[test]
    fn parses_the_installer_boot_cfg_and_renders_it_back() {
        let c = BootCfg::parse(ISO).unwrap();
        assert_eq!(c.kernel.as_deref(), Some("/b.b00"));
        assert_eq!(c.modules, ["/jumpstrt.gz", "/useropts.gz", "/k.b00"]);
        assert_eq!(c.files()[0], "/b.b00");
        assert_eq!(c.render(), ISO);
        assert_eq!(c.unbootable_reason(), Some("updated= is not above 0"));
    }

    #[test]
    fn prefix_applies_to_relative_paths_only_and_errors_name_the_line() {
        let c = BootCfg::parse("prefix=/esx\nkernel=b.b00\nmodules=k.b00 --- /abs.v00\n").unwrap();
        assert_eq!(c.files(), ["/esx/b.b00", "/esx/k.b00", "/abs.v00"]);
        assert_eq!(BootCfg::parse("a=1\nupdated=x\n").unwrap_err().line, 2);
    }
}
