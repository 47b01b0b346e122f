//! Writes a `Kickstart` back as a canonical kickstart: one command per line in a fixed order,
//! options spelled canonically, values quoted so that ESXi's shlex reads them back unchanged,
//! and the root password only ever as its hash. Reading the output gives the same model.

use std::fmt::Write;

use super::model::*;

/// Quote a word for POSIX shlex: bare when it holds nothing shlex treats specially.
fn push_line(out: &mut String, s: String) {
    out.push_str(&s);
    out.push('\n');
}

fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && !word
            .chars()
            .any(|c| c.is_whitespace() || "'\"\\#".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\"'\"'"))
    }
}

fn opt(line: &mut String, name: &str, value: Option<&str>) {
    match value {
        Some(v) => {
            let _ = write!(line, " --{name}={}", quote(v));
        }
        None => {
            let _ = write!(line, " --{name}");
        }
    }
}

fn flag(line: &mut String, name: &str, on: bool) {
    if on {
        opt(line, name, None);
    }
}

fn target(line: &mut String, t: &DiskTarget, disk: &str, first: &str) {
    match t {
        DiskTarget::Disk(d) => opt(line, disk, Some(d)),
        DiskTarget::FirstDisk(f) => opt(line, first, Some(&f.join(","))),
    }
}

pub fn print(ks: &Kickstart) -> String {
    let mut out = String::from("# Written by ksinstall: a canonical form of the kickstart.\n");
    if ks.accept_eula.is_some() {
        push_line(&mut out, "vmaccepteula".into());
    }
    if let Some(pw) = &ks.root_password {
        push_line(&mut out, format!("rootpw --iscrypted {}", quote(&pw.hash)));
    }
    if let Some(a) = &ks.action {
        push_line(&mut out, action_line(a));
    }
    for c in &ks.clearpart {
        let mut l = "clearpart".to_string();
        match &c.target {
            ClearTarget::Drives(d) => opt(&mut l, "drives", Some(&d.join(","))),
            ClearTarget::AllDrives => opt(&mut l, "alldrives", None),
            ClearTarget::IgnoreDrives(d) => opt(&mut l, "ignoredrives", Some(&d.join(","))),
            ClearTarget::FirstDisk(f) => opt(&mut l, "firstdisk", Some(&f.join(","))),
        }
        flag(&mut l, "overwritevmfs", c.overwrite_vmfs);
        push_line(&mut out, l);
    }
    for p in &ks.parts {
        let mut l = format!("part {}", quote(&p.datastore));
        target(&mut l, &p.target, "ondisk", "onfirstdisk");
        push_line(&mut out, l);
    }
    if let Some(n) = &ks.network {
        push_line(&mut out, network_line(n));
    }
    if let Some(k) = &ks.keyboard {
        push_line(&mut out, format!("keyboard {}", quote(&k.layout)));
    }
    if let Some(s) = &ks.serial_number {
        push_line(&mut out, format!("serialnum --esx={}", quote(&s.esx)));
    }
    if let Some(r) = &ks.reboot {
        push_line(
            &mut out,
            if r.no_eject {
                "reboot --noeject".into()
            } else {
                "reboot".into()
            },
        );
    }
    for (on, word) in [
        (&ks.paranoid, "paranoid"),
        (&ks.dryrun, "dryrun"),
        (&ks.partition_embed, "partitionembed"),
    ] {
        if on.is_some() {
            push_line(&mut out, word.into());
        }
    }
    for inc in &ks.pending_includes {
        push_line(&mut out, format!("%include {}", quote(&inc.target)));
    }
    print_scripts(&ks.scripts, &mut out);
    out
}

/// The install/upgrade/installorupgrade line.
fn action_line(a: &Action) -> String {
    let mut l = a.kind.command().to_string();
    if let Some(t) = &a.target {
        target(&mut l, t, "disk", "firstdisk");
    }
    flag(&mut l, "ignoressd", a.ignore_ssd);
    flag(&mut l, "overwritevmfs", a.overwrite_vmfs);
    flag(&mut l, "preservevmfs", a.preserve_vmfs);
    flag(&mut l, "novmfsondisk", a.no_vmfs_on_disk);
    flag(&mut l, "overwritevsan", a.overwrite_vsan);
    flag(&mut l, "ignoreprereqwarnings", a.ignore_prereq_warnings);
    flag(&mut l, "ignoreprereqerrors", a.ignore_prereq_errors);
    flag(
        &mut l,
        "forceunsupportedinstall",
        a.force_unsupported_install,
    );
    flag(&mut l, "forcemigrate", a.force_migrate);
    if let Some(s) = &a.system_disk {
        opt(&mut l, "systemdisk", Some(s));
    }
    flag(&mut l, "repartitionsystemdisk", a.repartition_system_disk);
    if !a.dpu_pci_slots.is_empty() {
        opt(&mut l, "dpuPciSlots", Some(&a.dpu_pci_slots.join(",")));
    }
    flag(&mut l, "deletecosvmdk", a.delete_cos_vmdk);
    flag(&mut l, "diskBootedFrom", a.disk_booted_from);
    if let Some(s) = &a.save_bootbank {
        opt(&mut l, "savebootbank", Some(s));
    }
    l
}

/// The network line, every option spelled out (addvmportgroup included).
fn network_line(n: &Network) -> String {
    let mut l = "network".to_string();
    opt(
        &mut l,
        "bootproto",
        Some(match n.bootproto {
            BootProto::Dhcp => "dhcp",
            BootProto::Static => "static",
        }),
    );
    match &n.device {
        Some(NetDevice::Vmnic(v)) | Some(NetDevice::Mac(v)) => opt(&mut l, "device", Some(v)),
        None => {}
    }
    for (name, v) in [("ip", n.ip), ("netmask", n.netmask), ("gateway", n.gateway)] {
        if let Some(v) = v {
            opt(&mut l, name, Some(&v.to_string()));
        }
    }
    if !n.nameservers.is_empty() {
        let ns: Vec<String> = n.nameservers.iter().map(|i| i.to_string()).collect();
        opt(&mut l, "nameserver", Some(&ns.join(",")));
    }
    if let Some(h) = &n.hostname {
        opt(&mut l, "hostname", Some(h));
    }
    if let Some(v) = n.vlan_id {
        opt(&mut l, "vlanid", Some(&v.to_string()));
    }
    opt(
        &mut l,
        "addvmportgroup",
        Some(if n.add_vm_portgroup { "1" } else { "0" }),
    );
    l
}

/// Sections go last: a body runs to the next section line. %pre scripts are always evaluated
/// first, so printing them before or after the others reads back the same; we put a body
/// without a final newline (the file's last section) at the very end, where it stays exact.
fn print_scripts(scripts: &[Script], out: &mut String) {
    let unterminated_pre = scripts
        .iter()
        .any(|s| s.kind == ScriptKind::Pre && !s.body.is_empty() && !s.body.ends_with('\n'));
    let (first, second): (Vec<&Script>, Vec<&Script>) = scripts
        .iter()
        .partition(|s| (s.kind == ScriptKind::Pre) != unterminated_pre);
    let ordered: Vec<&Script> = first.into_iter().chain(second).collect();
    for (i, s) in ordered.iter().enumerate() {
        let mut l = s.kind.section().to_string();
        opt(&mut l, "interpreter", Some(s.interpreter.name()));
        if let Some(t) = s.timeout_secs {
            opt(&mut l, "timeout", Some(&t.to_string()));
        }
        if s.kind == ScriptKind::Post && s.ignore_failure {
            opt(&mut l, "ignorefailure", Some("true"));
        }
        push_line(out, l);
        out.push_str(&s.body);
        let last = i + 1 == ordered.len();
        if !last && !s.body.is_empty() && !s.body.ends_with('\n') {
            out.push('\n');
        }
    }
}
