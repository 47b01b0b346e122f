//! ESXi's first-boot contract: what VMware's installer leaves in the boot bank for the installed
//! host's first boot (`onetime.tgz` holding `var/lib/vmware/firstboot/`), and the rules ESXi's
//! boot applies to it. The plan stage writes it; `inspect` and the tests read it back with the
//! same rules. docs/FIRSTBOOT.md has the contract and its sources (weasel 6.7 `script.py`,
//! ESXi 6.7 `firstboot.py`, the 6.7 VMkernel booted under QEMU).
//!
//! Archives are built by hand on the `tar` crate's GNU headers: ESXi's VMkernel accepts GNU tar
//! and refuses POSIX `ustar\0`, and needs an entry for every parent directory, which no
//! archive-from-a-list helper writes.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

/// Where first boot looks (`firstboot.py`'s `configPath` directory).
pub const DIR: &str = "var/lib/vmware/firstboot";
/// The archive's 8.3 name in the bank, last in `boot.cfg`'s `modules=`.
pub const ONETIME: &str = "onetime.tgz";
/// What `firstboot.py -l` strips from the `boot.cfg` at `bootCfgPath`.
pub const ONETIME_MODULE: &str = " --- onetime.tgz";
/// The `boot.cfg` of the bank that booted, as the installed host sees it. weasel writes the
/// bank's volume path; VMware's own first-boot helpers use `/bootbank/boot.cfg`, which on a
/// fresh install is the bank we wrote (the only one with a `boot.cfg`). docs/FIRSTBOOT.md.
pub const BOOT_CFG_PATH: &str = "/bootbank/boot.cfg";
/// What 8.x's installed `kernelopt` carries so that the first boot does not auto-partition.
pub const NO_AUTO_PARTITION: &str = "autoPartition=FALSE";
/// The parents ESXi's VMkernel needs as entries of their own, in order.
pub const PARENTS: [&str; 4] = [
    "var/",
    "var/lib/",
    "var/lib/vmware/",
    "var/lib/vmware/firstboot/",
];
/// Keys ESXi's `firstboot.py` reads (6.7); anything else is ignored by it.
pub const KNOWN_KEYS: &[&str] = &[
    "password",
    "keyboard",
    "licenseFile",
    "licenseCfgFile",
    "acceptanceLevel",
    "AD",
    "vsanWitness",
    "bootCfgPath",
    "fixupGPT",
    "copyFiles",
];

/// `firstboot.json` as ESXi's first boot reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstbootJson {
    /// Root's crypt hash: replaces the second field of root's `/etc/shadow` line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The layout name, for `esxcli system settings keyboard layout set`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyboard: Option<String>,
    /// The serial number, written to `/etc/vmware/vmware.lic`.
    #[serde(rename = "licenseFile", skip_serializing_if = "Option::is_none")]
    pub license_file: Option<String>,
    #[serde(rename = "bootCfgPath", skip_serializing_if = "Option::is_none")]
    pub boot_cfg_path: Option<String>,
    /// `/var/lib/vmware/firstboot/<name>` -> destination, copied before jumpstart.
    #[serde(rename = "copyFiles", default)]
    pub copy_files: BTreeMap<String, String>,
}

impl FirstbootJson {
    /// Sorted keys, four-space indent: `json.dump(..., indent=4, sort_keys=True)` as weasel.
    pub fn to_bytes(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        // serde_json's Map is ordered by key (no preserve_order feature): sorted like Python's.
        if value.serialize(&mut ser).is_err() {
            return b"{}".to_vec();
        }
        out
    }
}

/// One file of the archive: its path below `var/lib/vmware/firstboot/`, bytes and mode.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// Builds `onetime.tgz`: the parents first, then the members in the order given (ESXi's
/// `kickstart.py` runs the executable ones in directory order). Deterministic: fixed times and
/// owners, so the plan can carry its SHA-256.
pub fn onetime_tgz(members: &[Member]) -> std::io::Result<Vec<u8>> {
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for dir in PARENTS {
        let mut h = header(0, 0o755, tar::EntryType::Directory);
        tar.append_data(&mut h, dir, std::io::empty())?;
    }
    for m in members {
        let mut h = header(m.bytes.len() as u64, m.mode, tar::EntryType::Regular);
        tar.append_data(&mut h, format!("{DIR}/{}", m.name), m.bytes.as_slice())?;
    }
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    gz.finish()
}

fn header(size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(kind);
    h
}

/// One entry of an archive as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub directory: bool,
    pub mode: u32,
    pub size: u64,
    /// GNU (`ustar  \0`) rather than POSIX (`ustar\0` + `00`).
    pub gnu: bool,
}

/// What reading `onetime.tgz` back found: its entries, `firstboot.json`, and everything ESXi
/// would refuse or not read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnetimeReading {
    pub entries: Vec<Entry>,
    pub json: Option<FirstbootJson>,
    /// Keys of `firstboot.json` ESXi's first boot does not read.
    pub unknown_keys: Vec<String>,
    /// Executable files first boot runs, in archive order.
    pub scripts: Vec<String>,
    /// Problems: each one a thing ESXi would refuse or ignore.
    pub problems: Vec<String>,
    /// Members' bytes by path (the tests compare them); not serialized.
    #[serde(skip)]
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Reads an `onetime.tgz` as ESXi's boot takes it: every parent an entry before its children,
/// GNU headers, nothing outside `var/lib/vmware/firstboot/`, then `firstboot.json` as
/// `firstboot.py` reads it (its `copyFiles` sources must be in the archive and not executable).
pub fn read_onetime(tgz: &[u8]) -> OnetimeReading {
    let mut r = OnetimeReading::default();
    if let Err(e) = read_entries(tgz, &mut r) {
        r.problems
            .push(format!("not a gzip'd tar ESXi can read: {e}"));
        return r;
    }
    check_entries(&mut r);
    let json_path = format!("{DIR}/firstboot.json");
    match r.files.get(&json_path).cloned() {
        None => r
            .problems
            .push(format!("no {json_path}: first boot applies nothing")),
        Some(bytes) => check_json(&bytes, &mut r),
    }
    r
}

fn read_entries(tgz: &[u8], r: &mut OnetimeReading) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let h = entry.header();
        let gnu = h.as_gnu().is_some();
        let directory = h.entry_type() == tar::EntryType::Directory;
        let mode = h.mode()?;
        let size = h.size()?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if !directory {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            r.files
                .insert(path.trim_end_matches('/').to_string(), bytes);
        }
        r.entries.push(Entry {
            path,
            directory,
            mode,
            size,
            gnu,
        });
    }
    Ok(())
}

fn check_entries(r: &mut OnetimeReading) {
    let mut seen_dirs: Vec<String> = Vec::new();
    for e in &r.entries {
        let path = e.path.trim_end_matches('/');
        if !e.gnu {
            r.problems.push(format!(
                "{path}: not a GNU tar header (ESXi's vmtar wants GNU)"
            ));
        }
        if !(path == DIR || path.starts_with(&format!("{DIR}/")) || DIR.starts_with(path)) {
            r.problems.push(format!(
                "{path}: outside {DIR}/, where ESXi confines onetime.tgz"
            ));
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !seen_dirs.iter().any(|d| d == parent) {
                r.problems.push(format!(
                    "{path}: its directory {parent}/ is not an entry before it (ESXi's boot stops: \"Missing directory\")"
                ));
            }
        }
        if e.directory {
            seen_dirs.push(path.to_string());
        } else if e.mode & 0o111 != 0 {
            r.scripts.push(path.to_string());
        }
    }
}

fn check_json(bytes: &[u8], r: &mut OnetimeReading) {
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            r.problems.push(format!("firstboot.json is not JSON: {e}"));
            return;
        }
    };
    if let Some(map) = value.as_object() {
        r.unknown_keys = map
            .keys()
            .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
            .cloned()
            .collect();
    }
    for k in &r.unknown_keys {
        r.problems.push(format!(
            "firstboot.json: key {k:?} is not one ESXi's first boot reads"
        ));
    }
    let mut json: FirstbootJson = match serde_json::from_value(value) {
        Ok(j) => j,
        Err(e) => {
            r.problems
                .push(format!("firstboot.json: a key has the wrong type: {e}"));
            return;
        }
    };
    for (src, dst) in &json.copy_files {
        let inside = src.trim_start_matches('/');
        match r.entries.iter().find(|e| e.path == inside) {
            None => r.problems.push(format!(
                "copyFiles: {src} (for {dst}) is not in the archive"
            )),
            Some(e) if e.mode & 0o111 != 0 => r.problems.push(format!(
                "copyFiles: {src} is executable: first boot would also run it as a script"
            )),
            Some(_) => {}
        }
    }
    // What is read back is shown and serialized (`inspect`): the hash's scheme, never the hash.
    json.password = json.password.map(|p| scheme(&p).to_string());
    r.json = Some(json);
}

/// Whether a bank's `boot.cfg` hands `onetime.tgz` to first boot as ESXi expects: listed last in
/// `modules=`, and `kernelopt` switching auto-partitioning off.
pub fn boot_cfg_problems(modules: &[String], kernelopt: &str) -> Vec<String> {
    let mut out = Vec::new();
    match modules.iter().position(|m| m == ONETIME) {
        None => out.push("boot.cfg does not list onetime.tgz: first boot applies nothing".into()),
        Some(i) if i + 1 != modules.len() => out.push(format!(
            "onetime.tgz is not last in modules= ({} follow it)",
            modules.len() - i - 1
        )),
        Some(_) => {}
    }
    if !kernelopt.split_whitespace().any(|w| w == NO_AUTO_PARTITION) {
        out.push(format!(
            "kernelopt lacks {NO_AUTO_PARTITION}: ESXi may auto-partition at first boot"
        ));
    }
    out
}

/// What one installed boot bank hands ESXi's first boot, read back (`inspect`, `probe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankFirstBoot {
    /// `onetime.tgz` is in `modules=`: its first boot is still to come.
    pub pending: bool,
    /// The archive as read back; `None` when the bank has no `onetime.tgz`.
    pub onetime: Option<OnetimeReading>,
    /// What first boot will apply, in words.
    pub applies: Vec<String>,
    /// Everything ESXi would refuse or not read (archive and `boot.cfg`).
    pub problems: Vec<String>,
}

impl BankFirstBoot {
    /// `None` for a bank with neither an `onetime.tgz` file nor one listed.
    pub fn read(onetime: Option<&[u8]>, modules: &[String], kernelopt: &str) -> Option<Self> {
        let listed = modules.iter().any(|m| m == ONETIME);
        if onetime.is_none() && !listed {
            return None;
        }
        let reading = onetime.map(read_onetime);
        let mut problems = Vec::new();
        if listed {
            problems.extend(boot_cfg_problems(modules, kernelopt));
            if onetime.is_none() {
                problems.push(
                    "boot.cfg lists onetime.tgz but the bank has no such file: ESXi stops at boot"
                        .into(),
                );
            }
        }
        if let Some(r) = &reading {
            problems.extend(r.problems.iter().cloned());
        }
        let applies = reading.as_ref().map(applies).unwrap_or_default();
        Some(BankFirstBoot {
            pending: listed,
            onetime: reading,
            applies,
            problems,
        })
    }
}

/// `key = "value"` lines of an `esx.conf`.
pub fn esx_conf_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// What a read-back `onetime.tgz` makes the host, in words: the same facts the plan shows.
pub fn applies(r: &OnetimeReading) -> Vec<String> {
    let mut v = Vec::new();
    let file = |name: &str| {
        r.files
            .get(&format!("{DIR}/{name}"))
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    if let Some(conf) = file("esx.conf") {
        let c = esx_conf_values(&conf);
        let get = |k: &str| c.get(k).cloned().unwrap_or_default();
        v.push(format!("host name {}", get("/adv/Misc/HostName")));
        let vmk = "/net/vmkernelnic/child[0000]";
        if get(&format!("{vmk}/dhcp")) == "false" {
            v.push(format!(
                "network static {}/{} via {}",
                get(&format!("{vmk}/ipv4address")),
                get(&format!("{vmk}/ipv4netmask")),
                get("/net/routes/kernel/gateway")
            ));
        } else {
            v.push("network DHCP".into());
        }
        v.push(format!(
            "uplink {}",
            get("/net/vswitch/child[0000]/uplinks/child[0000]/pnic")
        ));
        let vlan = get("/net/vswitch/child[0000]/portgroup/child[0000]/vlanId");
        if !vlan.is_empty() && vlan != "0" {
            v.push(format!("VLAN {vlan}"));
        }
    }
    if let Some(resolv) = file("resolv.conf") {
        let ns: Vec<&str> = resolv
            .lines()
            .filter_map(|l| l.strip_prefix("nameserver "))
            .collect();
        if !ns.is_empty() {
            v.push(format!("DNS {}", ns.join(", ")));
        }
    }
    if let Some(j) = &r.json {
        if let Some(k) = &j.keyboard {
            v.push(format!("keyboard {k}"));
        }
        v.push(format!(
            "license {}",
            if j.license_file.is_some() {
                "from serialnum"
            } else {
                "evaluation"
            }
        ));
        match &j.password {
            Some(p) => v.push(format!("root password set: {p}")),
            None => v.push("root password not set".into()),
        }
    }
    for s in &r.scripts {
        v.push(format!("runs {s}"));
    }
    v
}

/// The crypt scheme of a hash, by its `$id$` prefix (never the hash itself).
pub fn scheme(hash: &str) -> &'static str {
    match hash.split('$').nth(1) {
        Some("6") => "SHA-512 crypt ($6$)",
        Some("5") => "SHA-256 crypt ($5$)",
        Some("1") => "MD5 crypt ($1$)",
        Some("y") => "yescrypt ($y$)",
        _ => "a crypt hash of an unknown scheme",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_of_files_only_is_what_esxi_refuses() {
        // The archive ESXi stopped on: files without their parents.
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mut h = header(2, 0o644, tar::EntryType::Regular);
        tar.append_data(&mut h, format!("{DIR}/firstboot.json"), &b"{}"[..])
            .unwrap();
        let bytes = tar.into_inner().unwrap().finish().unwrap();
        let r = read_onetime(&bytes);
        assert!(
            r.problems.iter().any(|p| p.contains("Missing directory")),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn parents_first_and_sorted_json_read_back_clean() {
        let json = FirstbootJson {
            password: Some("$6$abcdefgh$x".into()),
            boot_cfg_path: Some(BOOT_CFG_PATH.into()),
            ..Default::default()
        };
        let bytes = onetime_tgz(&[Member {
            name: "firstboot.json".into(),
            bytes: json.to_bytes(),
            mode: 0o644,
        }])
        .unwrap();
        let r = read_onetime(&bytes);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!(r.entries[0].path, "var/");
        let shown = FirstbootJson {
            password: Some("SHA-512 crypt ($6$)".into()),
            ..json
        };
        assert_eq!(
            r.json,
            Some(shown),
            "the hash is never shown, its scheme is"
        );
        let text = String::from_utf8(r.files[&format!("{DIR}/firstboot.json")].clone()).unwrap();
        assert!(text.find("bootCfgPath") < text.find("password"), "{text}");
        assert!(text.contains("\n    \"bootCfgPath\""), "{text}");
    }
}
