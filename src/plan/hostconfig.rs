//! The host's configuration as ESXi keeps it in a boot bank: `state.tgz` (wrapping `local.tgz`
//! with `etc/`) and `onetime.tgz` (the `%firstboot` scripts and `firstboot.json`). Built at plan
//! time, deterministically (fixed times and owners), so the plan carries each archive's SHA-256
//! and apply can verify what it wrote. Only the root password's crypt hash is ever stored.
//!
//! The `etc/vmware/esx.conf` keys follow ESXi's `/path = "value"` format; which keys ESXi's first
//! boot reads from a freshly installed bank is UNCONFIRMED (docs/INSTALL.md).

use std::io::Write;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::kickstart::{BootProto, Interpreter, Kickstart, NetDevice, ScriptKind};

/// A file the installer makes (rather than copies from the media).
#[derive(Debug, Clone, Serialize)]
pub struct GeneratedFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl GeneratedFile {
    pub fn new(name: &str, bytes: Vec<u8>) -> GeneratedFile {
        GeneratedFile {
            name: name.into(),
            size: bytes.len() as u64,
            sha256: crate::media::verify::sha256_hex(&bytes),
            bytes,
        }
    }
}

/// What the host will be, in words for the plan and the report (never the password).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostConfig {
    pub hostname: String,
    pub network: String,
    pub vlan_id: Option<u16>,
    pub nameservers: Vec<String>,
    pub keyboard: String,
    /// "set (crypt hash)" or "not set": never the password, nor its hash.
    pub root_password: String,
    pub serial_number: bool,
}

fn tar_gz(files: &[(&str, &[u8], u32)]) -> Result<Vec<u8>> {
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for (path, data, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, path, *data)?;
    }
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    Ok(gz.finish()?)
}

fn esx_conf(ks: &Kickstart, hostname: &str) -> String {
    let mut c = String::new();
    let mut kv = |k: &str, v: &str| c.push_str(&format!("{k} = \"{}\"\n", v.replace('"', "")));
    kv("/adv/Misc/HostName", hostname);
    kv("/net/vmkernelnic/child[0000]/name", "vmk0");
    kv(
        "/net/vmkernelnic/child[0000]/portgroup",
        "Management Network",
    );
    if let Some(n) = &ks.network {
        match &n.device {
            Some(NetDevice::Vmnic(v)) => kv("/net/vswitch/child[0000]/uplinks/child[0000]/pnic", v),
            Some(NetDevice::Mac(m)) => kv("/net/vswitch/child[0000]/uplinks/child[0000]/mac", m),
            None => {}
        }
        match n.bootproto {
            BootProto::Dhcp => kv("/net/vmkernelnic/child[0000]/dhcp", "true"),
            BootProto::Static => {
                kv("/net/vmkernelnic/child[0000]/dhcp", "false");
                if let Some(ip) = n.ip {
                    kv("/net/vmkernelnic/child[0000]/ipv4address", &ip.to_string());
                }
                if let Some(m) = n.effective_netmask() {
                    kv("/net/vmkernelnic/child[0000]/ipv4netmask", &m.to_string());
                }
                if let Some(g) = n.effective_gateway() {
                    kv("/net/routes/kernel/gateway", &g.to_string());
                }
            }
        }
        if let Some(v) = n.vlan_id {
            kv(
                "/net/vswitch/child[0000]/portgroup/child[0000]/vlanId",
                &v.to_string(),
            );
        }
        kv(
            "/net/vswitch/child[0000]/portgroup/child[0001]/name",
            if n.add_vm_portgroup { "VM Network" } else { "" },
        );
    } else {
        kv("/net/vmkernelnic/child[0000]/dhcp", "true");
    }
    if let Some(k) = &ks.keyboard {
        kv("/system/keymap", &k.layout);
    }
    if let Some(s) = &ks.serial_number {
        kv("/system/licenseKey", &s.esx);
    }
    c
}

pub(crate) fn host_config(ks: &Kickstart) -> HostConfig {
    let net = ks.network.as_ref();
    let network = match net {
        None => "DHCP on the boot NIC (no network command)".to_string(),
        Some(n) if n.bootproto == BootProto::Dhcp => "DHCP".into(),
        Some(n) => format!(
            "static {}/{} via {}",
            n.ip.map(|i| i.to_string()).unwrap_or_default(),
            n.effective_netmask()
                .map(|i| i.to_string())
                .unwrap_or_default(),
            n.effective_gateway()
                .map(|i| i.to_string())
                .unwrap_or_default()
        ),
    };
    HostConfig {
        hostname: net
            .map(|n| n.effective_hostname().to_string())
            .unwrap_or_else(|| "localhost".into()),
        network,
        vlan_id: net.and_then(|n| n.vlan_id),
        nameservers: net
            .map(|n| n.nameservers.iter().map(|i| i.to_string()).collect())
            .unwrap_or_default(),
        keyboard: ks
            .keyboard
            .as_ref()
            .map(|k| k.layout.clone())
            .unwrap_or_else(|| "US Default".into()),
        root_password: if ks.root_password.is_some() {
            "set (crypt hash)".into()
        } else {
            "not set".into()
        },
        serial_number: ks.serial_number.is_some(),
    }
}

/// `state.tgz`: `local.tgz` holding `etc/shadow`, `etc/hosts`, `etc/resolv.conf` and
/// `etc/vmware/esx.conf`.
pub(crate) fn state_tgz(ks: &Kickstart) -> Result<GeneratedFile> {
    let host = host_config(ks);
    let hash = ks
        .root_password
        .as_ref()
        .map(|r| r.hash.as_str())
        .unwrap_or("*");
    let shadow = format!("root:{hash}:0:0:99999:7:::\n");
    let hosts = format!(
        "127.0.0.1 localhost.localdomain localhost\n::1 localhost.localdomain localhost\n{}\n",
        match ks.network.as_ref().and_then(|n| n.ip) {
            Some(ip) => format!(
                "{ip} {} {}",
                host.hostname,
                host.hostname.split('.').next().unwrap_or("")
            ),
            None => String::new(),
        }
    );
    let resolv: String = host
        .nameservers
        .iter()
        .map(|n| format!("nameserver {n}\n"))
        .collect();
    let conf = esx_conf(ks, &host.hostname);
    let local = tar_gz(&[
        ("etc/shadow", shadow.as_bytes(), 0o400),
        ("etc/hosts", hosts.as_bytes(), 0o644),
        ("etc/resolv.conf", resolv.as_bytes(), 0o644),
        ("etc/vmware/esx.conf", conf.as_bytes(), 0o644),
    ])?;
    Ok(GeneratedFile::new(
        "state.tgz",
        tar_gz(&[("local.tgz", &local, 0o644)])?,
    ))
}

/// `onetime.tgz`: each `%firstboot` script as `var/lib/vmware/firstboot/NNN.firstboot_NNN` with
/// its interpreter's shebang, and `firstboot.json`. `None` when there is no `%firstboot`.
pub(crate) fn onetime_tgz(ks: &Kickstart) -> Result<Option<GeneratedFile>> {
    let scripts: Vec<_> = ks
        .scripts
        .iter()
        .filter(|s| s.kind == ScriptKind::Firstboot)
        .collect();
    if scripts.is_empty() {
        return Ok(None);
    }
    let mut files: Vec<(String, Vec<u8>, u32)> = Vec::new();
    for (i, s) in scripts.iter().enumerate() {
        let n = (i + 1) * 10;
        let shebang = match s.interpreter {
            Interpreter::Busybox => "#!/bin/sh -l\n",
            Interpreter::Python => "#!/usr/bin/python\n",
        };
        files.push((
            format!("var/lib/vmware/firstboot/{n:03}.firstboot_{n:03}"),
            format!("{shebang}{}", s.body).into_bytes(),
            0o755,
        ));
    }
    let host = host_config(ks);
    let json = serde_json::json!({
        "rootpw_hash": ks.root_password.as_ref().map(|r| r.hash.clone()),
        "keymap": host.keyboard,
        "bootCfgPath": "/bootbank/boot.cfg",
        "scripts": files.iter().map(|f| f.0.clone()).collect::<Vec<_>>(),
    });
    files.push((
        "var/lib/vmware/firstboot/firstboot.json".into(),
        serde_json::to_vec_pretty(&json)?,
        0o600,
    ));
    let refs: Vec<(&str, &[u8], u32)> = files
        .iter()
        .map(|(p, b, m)| (p.as_str(), b.as_slice(), *m))
        .collect();
    Ok(Some(GeneratedFile::new("onetime.tgz", tar_gz(&refs)?)))
}
