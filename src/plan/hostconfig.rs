//! What the installed ESXi applies at its first boot, made the way VMware's installer makes it
//! (weasel 6.7 `script.py`, `users.py`, `keyboard.py`, `esxlicense.py`, `networking`): one
//! `onetime.tgz` holding `firstboot.json`, the copied `esx.conf`, `hosts` and `resolv.conf`,
//! the `%firstboot` scripts, and our own step that formats ESX-OSData and the datastores with
//! ESXi's tools (`src/firstboot.rs` has the format, docs/FIRSTBOOT.md the contract and what is
//! UNCONFIRMED). A fresh install writes no `state.tgz`: ESXi's own defaults (accounts, files)
//! stay, and first boot changes only what the kickstart says.
//!
//! Built at plan time, deterministically, so the plan carries the archive's SHA-256 and apply
//! verifies what it wrote. Only the root password's crypt hash is ever stored.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::firstboot::{self, FirstbootJson, Member};
use crate::inventory::Nic;
use crate::kickstart::{BootProto, Interpreter, Kickstart, NetDevice, ScriptKind};

/// A file the installer makes (rather than copies from the media).
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// One partition our first-boot step formats with ESXi's `vmkfstools`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatStep {
    /// The disk as ksinstall names it.
    pub disk: String,
    /// Found at first boot as the disk ESXi booted from (VMware's own way: `esxcfg-info -b`,
    /// `vmkfstools -P`); otherwise by its GPT disk GUID.
    pub boot_disk: bool,
    pub disk_guid: String,
    pub partition: u32,
    /// `vmfsl` (ESX-OSData) or `vmfs6` (a datastore).
    pub filesystem: String,
    /// The datastore name (`datastore1`, a `part` name); none for ESX-OSData.
    pub label: Option<String>,
}

impl FormatStep {
    pub fn describe(&self) -> String {
        let what = match &self.label {
            Some(l) => format!("VMFS6 datastore \"{l}\""),
            None => "ESX-OSData (VMFS-L)".to_string(),
        };
        format!("{what} on {} partition {}", self.disk, self.partition)
    }

    /// What is made, in two words: `ESX-OSData`, `datastore "datastore1"`.
    pub fn made(&self) -> String {
        match &self.label {
            Some(l) => format!("datastore \"{l}\""),
            None => "ESX-OSData".to_string(),
        }
    }
}

/// The NIC the management network goes on, and why that one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicChoice {
    pub vmnic: String,
    pub mac: Option<String>,
    pub why: String,
}

/// What the host will be after its first boot, in words for the plan, the report and the console
/// (never the password, nor its hash).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HostConfig {
    /// The FQDN the kickstart gives (`localhost` without one).
    pub hostname: String,
    pub network: String,
    /// `vmnic0 (52:54:00:12:34:56), the NIC the installer booted from`.
    pub nic: String,
    pub vlan_id: Option<u16>,
    pub nameservers: Vec<String>,
    pub keyboard: String,
    /// "set: SHA-512 crypt ($6$)": the scheme, never the hash.
    pub root_password: String,
    pub serial_number: bool,
    /// The `%firstboot` scripts as they are named in `onetime.tgz`.
    pub firstboot_scripts: Vec<String>,
    /// What our first-boot step formats.
    pub format_steps: Vec<String>,
    /// The same, in two words each (the console's one line).
    pub formats_made: Vec<String>,
    /// Whether the host reboots once after formatting ESX-OSData.
    pub reboot_after_format: bool,
    /// What runs only as a first-boot script (ESXi skips them all under Secure Boot).
    pub needs_scripts: Vec<String>,
}

impl HostConfig {
    /// The dry run's and the console's lines: what first boot applies.
    pub fn lines(&self) -> Vec<String> {
        let mut v = vec![
            format!("host name {}", self.hostname),
            format!("network {} on {}", self.network, self.nic),
        ];
        if let Some(id) = self.vlan_id {
            v.push(format!("VLAN {id}"));
        }
        if !self.nameservers.is_empty() {
            v.push(format!("DNS {}", self.nameservers.join(", ")));
        }
        v.push(format!("keyboard {}", self.keyboard));
        v.push(format!("root password {}", self.root_password));
        v.push(format!(
            "license {}",
            if self.serial_number {
                "from serialnum"
            } else {
                "evaluation"
            }
        ));
        for s in &self.firstboot_scripts {
            v.push(format!("%firstboot {s}"));
        }
        for f in &self.format_steps {
            v.push(format!("format {f}"));
        }
        if self.reboot_after_format {
            v.push("ESXi restarts once after ESX-OSData is formatted, so that it uses it".into());
        }
        v
    }
}

/// Everything first boot is made from.
pub(crate) struct FirstBootInputs<'a> {
    pub ks: &'a Kickstart,
    pub nic: NicChoice,
    pub formats: &'a [FormatStep],
    /// The install log copied to `/var/log/esxi_install.log`, as weasel copies its own.
    pub install_log: String,
}

/// The NIC ESXi's installer would put the management network on: the kickstart's `--device`
/// (a vmnic name or a MAC), else the NIC the installer booted from (`BOOTIF=`/`netdevice=`),
/// else the first with link, else the first (weasel 6.7 `networking_base.connect`).
pub(crate) fn choose_nic(
    ks: &Kickstart,
    boot_netdevice: Option<&str>,
    nics: &[Nic],
    warnings: &mut Vec<String>,
) -> NicChoice {
    let named = |what: &str, why: &str| -> Option<NicChoice> {
        let found = if what.contains(':') {
            nics.iter().find(|n| n.mac.eq_ignore_ascii_case(what))
        } else {
            nics.iter().find(|n| n.vmnic.as_deref() == Some(what))
        };
        match found {
            Some(n) => Some(NicChoice {
                vmnic: n.vmnic.clone().unwrap_or_else(|| "vmnic0".into()),
                mac: Some(n.mac.clone()),
                why: why.into(),
            }),
            None if !what.contains(':') => Some(NicChoice {
                vmnic: what.into(),
                mac: None,
                why: why.into(),
            }),
            None => None,
        }
    };
    let device = ks.network.as_ref().and_then(|n| n.device.as_ref());
    let from_ks = device.and_then(|d| match d {
        NetDevice::Vmnic(v) => named(v, "named by the kickstart's network --device"),
        NetDevice::Mac(m) => named(m, "named by MAC in the kickstart's network --device"),
    });
    if let Some(c) = from_ks {
        return c;
    }
    if let Some(c) = boot_netdevice.and_then(|b| named(b, "the NIC the installer booted from")) {
        return c;
    }
    let pci: Vec<&Nic> = nics.iter().filter(|n| n.vmnic.is_some()).collect();
    let pick = pci
        .iter()
        .find(|n| n.link == Some(true))
        .map(|n| (n, "the first NIC with link"))
        .or_else(|| pci.first().map(|n| (n, "the first NIC")));
    match pick {
        Some((n, why)) => NicChoice {
            vmnic: n.vmnic.clone().unwrap_or_default(),
            mac: Some(n.mac.clone()),
            why: why.into(),
        },
        None => {
            warnings.push("first boot: no network interface was seen on this machine; the management network is put on vmnic0".into());
            NicChoice {
                vmnic: "vmnic0".into(),
                mac: None,
                why: "assumed: no NIC seen".into(),
            }
        }
    }
}

/// `onetime.tgz` and the words for it.
pub(crate) fn first_boot(
    inp: &FirstBootInputs<'_>,
) -> std::io::Result<(GeneratedFile, HostConfig)> {
    let ks = inp.ks;
    let mut host = host_config(ks);
    host.nic = match &inp.nic.mac {
        Some(m) => format!("{} ({m}), {}", inp.nic.vmnic, inp.nic.why),
        None => format!("{}, {}", inp.nic.vmnic, inp.nic.why),
    };
    let copies = [
        ("esx.conf", "/etc/vmware/esx.conf", esx_conf(ks, &inp.nic)),
        ("hosts", "/etc/hosts", hosts(ks)),
        ("resolv.conf", "/etc/resolv.conf", resolv_conf(ks)),
        (
            "esxi_install.log",
            "/var/log/esxi_install.log",
            inp.install_log.clone(),
        ),
    ];
    let mut json = FirstbootJson {
        password: ks.root_password.as_ref().map(|r| r.hash.clone()),
        keyboard: ks.keyboard.as_ref().map(|k| k.layout.clone()),
        license_file: ks.serial_number.as_ref().map(|s| s.esx.clone()),
        boot_cfg_path: Some(firstboot::BOOT_CFG_PATH.into()),
        ..Default::default()
    };
    let mut members = Vec::new();
    for (name, dest, text) in copies {
        json.copy_files
            .insert(format!("/{}/{name}", firstboot::DIR), dest.into());
        // Not executable: first boot runs every executable file of the directory.
        members.push(Member {
            name: name.into(),
            bytes: text.into_bytes(),
            mode: 0o644,
        });
    }
    members.push(Member {
        name: "firstboot.json".into(),
        bytes: json.to_bytes(),
        mode: 0o644,
    });
    if !inp.formats.is_empty() {
        members.push(Member {
            name: FORMAT_SCRIPT.into(),
            bytes: format_script(inp.formats).into_bytes(),
            mode: 0o755,
        });
        host.format_steps = inp.formats.iter().map(FormatStep::describe).collect();
        host.formats_made = inp.formats.iter().map(FormatStep::made).collect();
        host.reboot_after_format = inp.formats.iter().any(|f| f.filesystem == "vmfsl");
        host.needs_scripts.extend(host.format_steps.clone());
    }
    for (i, s) in ks
        .scripts
        .iter()
        .filter(|s| s.kind == ScriptKind::Firstboot)
        .enumerate()
    {
        // weasel: '%03d.firstboot_%s' % (order, '%03d' % count), mode 0777, '#!interp\nbody'.
        let name = format!("{:03}.firstboot_{:03}", i + 1, i + 1);
        let interp = match s.interpreter {
            Interpreter::Busybox => "/bin/sh -l",
            Interpreter::Python => "/usr/bin/python",
        };
        host.firstboot_scripts
            .push(format!("{name} ({}, {})", s.interpreter.name(), s.span));
        host.needs_scripts.push(format!("%firstboot at {}", s.span));
        members.push(Member {
            name,
            bytes: format!("#!{interp}\n{}", s.body).into_bytes(),
            mode: 0o777,
        });
    }
    let tgz = firstboot::onetime_tgz(&members)?;
    Ok((GeneratedFile::new(firstboot::ONETIME, tgz), host))
}

/// The words for the host the kickstart describes (shared with upgrades, which apply nothing).
pub(crate) fn host_config(ks: &Kickstart) -> HostConfig {
    let net = ks.network.as_ref();
    let network = match net {
        None => "DHCP (no network command)".to_string(),
        Some(n) if n.bootproto == BootProto::Dhcp => "DHCP".into(),
        Some(n) => format!(
            "static {}/{} via {}",
            show(n.ip),
            show(n.effective_netmask()),
            show(n.effective_gateway())
        ),
    };
    HostConfig {
        hostname: net
            .map(|n| n.effective_hostname().to_string())
            .unwrap_or_else(|| "localhost".into()),
        network,
        vlan_id: net.and_then(|n| n.vlan_id),
        nameservers: net
            .map(|n| {
                n.nameservers
                    .iter()
                    .take(2)
                    .map(|i| i.to_string())
                    .collect()
            })
            .unwrap_or_default(),
        keyboard: ks
            .keyboard
            .as_ref()
            .map(|k| k.layout.clone())
            .unwrap_or_else(|| "US Default (ESXi's default)".into()),
        root_password: match &ks.root_password {
            Some(r) => format!("set: {}", firstboot::scheme(&r.hash)),
            None => "not set".into(),
        },
        serial_number: ks.serial_number.is_some(),
        ..Default::default()
    }
}

fn show(a: Option<Ipv4Addr>) -> String {
    a.map(|i| i.to_string()).unwrap_or_default()
}

/// `host` and `domain` of an FQDN.
fn split_fqdn(fqdn: &str) -> (&str, Option<&str>) {
    match fqdn.split_once('.') {
        Some((h, d)) if !d.is_empty() => (h, Some(d)),
        _ => (fqdn, None),
    }
}

/// `esx.conf` as the installer's snapshot would hold the kickstart's network: `vSwitch0` with the
/// chosen NIC as its only uplink, `Management Network` (with the VLAN), `vmk0` on it, the
/// gateway, the host name, `VM Network` unless `--addvmportgroup=0`. Key names from older public
/// `esx.conf` files; that 8.x reads each of them is UNCONFIRMED (docs/FIRSTBOOT.md).
fn esx_conf(ks: &Kickstart, nic: &NicChoice) -> String {
    let net = ks.network.as_ref();
    let mut c = String::new();
    let mut kv = |k: &str, v: &str| c.push_str(&format!("{k} = \"{}\"\n", v.replace('"', "")));
    let fqdn = net.map(|n| n.effective_hostname()).unwrap_or("localhost");
    let (host, _) = split_fqdn(fqdn);
    let static_ip = net
        .filter(|n| n.bootproto == BootProto::Static)
        .and_then(|n| n.ip);
    kv("/adv/Misc/HostName", host);
    kv("/adv/Net/ManagementIface", "vmk0");
    if let Some(ip) = static_ip {
        kv("/adv/Misc/HostIPAddr", &ip.to_string());
        kv("/adv/Net/ManagementAddr", &ip.to_string());
    }
    kv("/net/pnic/child[0000]/name", &nic.vmnic);
    if let Some(m) = &nic.mac {
        kv("/net/pnic/child[0000]/mac", m);
    }
    let vs = "/net/vswitch/child[0000]";
    kv(&format!("{vs}/name"), "vSwitch0");
    kv(&format!("{vs}/numPorts"), "128");
    kv(&format!("{vs}/uplinks/child[0000]/pnic"), &nic.vmnic);
    let pg = format!("{vs}/portgroup/child[0000]");
    kv(&format!("{pg}/name"), "Management Network");
    let vlan = net.and_then(|n| n.vlan_id).unwrap_or(0);
    kv(&format!("{pg}/vlanId"), &vlan.to_string());
    kv(&format!("{pg}/teamPolicy/uplinks[0000]/pnic"), &nic.vmnic);
    if net.is_none_or(|n| n.add_vm_portgroup) {
        kv(&format!("{vs}/portgroup/child[0001]/name"), "VM Network");
        kv(&format!("{vs}/portgroup/child[0001]/vlanId"), "0");
    }
    let vmk = "/net/vmkernelnic/child[0000]";
    kv(&format!("{vmk}/name"), "vmk0");
    kv(&format!("{vmk}/portgroup"), "Management Network");
    if let Some(m) = &nic.mac {
        kv(&format!("{vmk}/mac"), m);
    }
    match (net, static_ip) {
        (Some(n), Some(ip)) => {
            kv(&format!("{vmk}/dhcp"), "false");
            kv(&format!("{vmk}/dhcpDns"), "false");
            kv(&format!("{vmk}/ipv4address"), &ip.to_string());
            kv(&format!("{vmk}/ipv4netmask"), &show(n.effective_netmask()));
            kv("/net/routes/kernel/gateway", &show(n.effective_gateway()));
        }
        _ => {
            kv(&format!("{vmk}/dhcp"), "true");
            kv(&format!("{vmk}/dhcpDns"), "true");
        }
    }
    c
}

/// `/etc/hosts` with ESXi's loopback lines and, for a static address, the host's own line.
fn hosts(ks: &Kickstart) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost.localdomain localhost\n::1\tlocalhost.localdomain localhost\n",
    );
    if let Some(n) = ks
        .network
        .as_ref()
        .filter(|n| n.bootproto == BootProto::Static)
    {
        if let Some(ip) = n.ip {
            let fqdn = n.effective_hostname();
            let (host, domain) = split_fqdn(fqdn);
            if domain.is_some() {
                s.push_str(&format!("{ip}\t{fqdn} {host}\n"));
            } else {
                s.push_str(&format!("{ip}\t{fqdn}\n"));
            }
        }
    }
    s
}

/// `/etc/resolv.conf`: the domain as the search domain, at most two name servers.
fn resolv_conf(ks: &Kickstart) -> String {
    let mut s = String::new();
    if let Some(n) = &ks.network {
        if let (_, Some(domain)) = split_fqdn(n.effective_hostname()) {
            s.push_str(&format!("search {domain}\n"));
        }
        for ns in n.nameservers.iter().take(2) {
            s.push_str(&format!("nameserver {ns}\n"));
        }
    }
    s
}

/// Our first-boot step's name: runs before the kickstart's `%firstboot` scripts where ESXi
/// keeps archive order (UNCONFIRMED: `kickstart.py` runs them in directory order).
pub const FORMAT_SCRIPT: &str = "000.firstboot_ksinstall";

/// The first-boot step that finishes the disk with ESXi's own tools, as VMware's installer
/// does during the install and image-based deployers do on the target: find the boot disk the
/// way ESXi's `firstboot_fixup_gpt_tables.sh` does (`esxcfg-info -b`, `vmkfstools -P`), other
/// disks by the GPT disk GUID ksinstall wrote; format each partition only while its first
/// 4 MiB are zero (ksinstall wiped them; any file system writes there), so a rerun changes
/// nothing; log to `/var/log/ksinstall-firstboot.log`; after ESX-OSData was formatted, reboot
/// once when the first-boot scripts are done, so that ESXi puts its logs and scratch there.
fn format_script(steps: &[FormatStep]) -> String {
    let mut s = String::from(FORMAT_HEAD);
    for f in steps {
        let disk = if f.boot_disk {
            "\"$BOOTDISK\"".to_string()
        } else {
            format!("\"$(disk_by_guid {})\"", f.disk_guid)
        };
        s.push_str(&format!(
            "format_partition {disk} {} {} \"{}\"\n",
            f.partition,
            f.filesystem,
            f.label.as_deref().unwrap_or("")
        ));
    }
    s.push_str(FORMAT_TAIL);
    s
}

const FORMAT_HEAD: &str = r#"#!/bin/sh -l
# ksinstall: format ESX-OSData and the VMFS datastores with ESXi's own tools (docs/FIRSTBOOT.md).
# Each partition is formatted only while its first 4 MiB are zero, so running this again
# changes nothing. KSINSTALL_ESXI_ROOT is only set by ksinstall's model test.
R="${KSINSTALL_ESXI_ROOT-}"
LOG="$R/var/log/ksinstall-firstboot.log"
DISKS="$R/vmfs/devices/disks"
FAILED=0
OSDATA_FORMATTED=0
log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*" >>"$LOG"; }
is_blank() {
  python -c 'import sys
d = open(sys.argv[1], "rb").read(4 << 20)
sys.exit(0 if len(d) == 4 << 20 and not d.strip(b"\0") else 1)' "$1"
}
disk_by_guid() {
  python -c 'import os, sys, uuid
want = uuid.UUID(sys.argv[2]).bytes_le
for name in sorted(os.listdir(sys.argv[1])):
    if ":" in name:
        continue
    try:
        with open(os.path.join(sys.argv[1], name), "rb") as f:
            head = f.read(8192)
    except OSError:
        continue
    for lba1 in (512, 4096):
        h = head[lba1:lba1 + 92]
        if h[:8] == b"EFI PART" and h[56:72] == want:
            print(name)
            sys.exit(0)
sys.exit(1)' "$DISKS" "$1"
}
format_partition() {
  disk=$1; part=$2; fs=$3; label=$4
  if [ -z "$disk" ]; then
    log "partition $part ($fs $label): its disk was not found"; FAILED=1; return
  fi
  dev="$DISKS/$disk:$part"
  if [ ! -e "$dev" ]; then
    log "$dev: no such partition"; FAILED=1; return
  fi
  if ! is_blank "$dev"; then
    log "$dev: holds data already; left as it is"; return
  fi
  if [ -n "$label" ]; then
    vmkfstools -C "$fs" -S "$label" "$dev" >>"$LOG" 2>&1
  else
    vmkfstools -C "$fs" "$dev" >>"$LOG" 2>&1
  fi
  rc=$?
  log "$dev: vmkfstools -C $fs ${label:+-S $label }exited $rc"
  if [ $rc -ne 0 ]; then FAILED=1; elif [ "$fs" = vmfsl ]; then OSDATA_FORMATTED=1; fi
}
BOOTUUID=$(esxcfg-info -b 2>>"$LOG")
BOOTDISK=$(vmkfstools -P "$R/vmfs/volumes/$BOOTUUID" 2>>"$LOG" | awk '/Partitions spanned/ {getline; sub(/:[0-9]+$/, "", $1); print $1; exit}')
log "boot volume ${BOOTUUID:-not found}, boot disk ${BOOTDISK:-not found}"
"#;

const FORMAT_TAIL: &str = r#"if [ "$OSDATA_FORMATTED" = 1 ]; then
  # ESXi takes ESX-OSData at boot: reboot once, after kickstart.py has run every first-boot
  # script (it is this script's parent), at most an hour from now.
  parent=$PPID
  (
    i=0
    while kill -0 "$parent" 2>/dev/null && [ $i -lt 720 ]; do sleep 5; i=$((i + 1)); done
    log "rebooting once so that ESXi uses ESX-OSData"
    reboot
  ) </dev/null >/dev/null 2>&1 &
fi
log "done (failed: $FAILED)"
exit $FAILED
"#;
