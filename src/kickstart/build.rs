//! Turns checked command lines into the typed `Kickstart`, applying the rules a table cannot
//! express: the one action command, required commands, passwords, networks, disks, DPU slots.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::args::{self, Args};
use super::diag::{Sink, Span};
use super::grammar::{Build, Occurs, KEYBOARDS};
use super::model::*;
use super::password::{self, crypt_form};
use super::reader::{Arg, Invocation, Visitor};
use super::template;

#[derive(Default)]
pub struct Builder {
    pub ks: Kickstart,
    /// Commands already seen, for the once-only rules.
    seen: HashMap<&'static str, Span>,
}

impl Builder {
    /// Whether the command (by its canonical name) was written anywhere.
    pub fn seen(&self, command: &str) -> bool {
        self.seen.contains_key(command)
    }
}

/// A rule needs one of `options` and none is there. When one was given but refused, the
/// diagnostic that refused it is the one report (a warning becomes an error saying what that
/// broke); otherwise `message` is reported at `span`.
fn needs(a: &Args, options: &[&str], span: &Span, message: &str, help: &str, sink: &mut Sink) {
    match options.iter().find_map(|o| a.refused(o)) {
        Some(i) => sink.escalate(i, &format!(": {message}")),
        None => {
            sink.error_help(span, message, help);
            if let [only] = options {
                sink.about(only);
            }
        }
    }
}

fn split_list(v: &str, lower: bool) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if lower {
                s.to_lowercase()
            } else {
                s.to_string()
            }
        })
        .collect()
}

impl Visitor for Builder {
    fn pre_script(&mut self, inv: &Invocation, sink: &mut Sink) -> Option<Script> {
        let a = args::parse(inv, sink);
        let s = script(inv, &a, ScriptKind::Pre, sink)?;
        self.ks.scripts.push(s.clone());
        Some(s)
    }

    fn pending_include(&mut self, target: String, span: Span) {
        self.ks
            .pending_includes
            .push(PendingInclude { target, span });
    }

    fn command(&mut self, inv: &Invocation, sink: &mut Sink) {
        let spec = inv.spec;
        let upgrading = matches!(
            self.ks.action,
            Some(Action {
                kind: ActionKind::Upgrade,
                ..
            })
        );
        if upgrading && spec.invalidated_by_upgrade {
            sink.warn(
                &inv.span,
                format!("command \"{}\" is ignored when upgrading", spec.name),
            );
            return;
        }
        if let Some(first) = self.seen.get(spec.name) {
            match spec.occurs {
                Occurs::Once => sink.warn(
                    &inv.span,
                    format!("command \"{}\" is given more than once (first at line {}); the last one is used", spec.name, first.line),
                ),
                Occurs::OnceStrict => {
                    sink.error(&inv.span, format!("command \"{}\" is given more than once (first at {first})", spec.name));
                    return;
                }
                Occurs::Many => {}
            }
        }
        self.seen
            .entry(spec.name)
            .or_insert_with(|| inv.span.clone());
        if spec.name == "rootpw" && rootpw_placeholder(inv, sink) {
            self.ks.root_password = None;
            return;
        }
        let a = args::parse(inv, sink);
        let span = inv.span.clone();
        match spec.build {
            Build::Eula => self.ks.accept_eula = Some(span),
            Build::Rootpw => self.ks.root_password = rootpw(inv, &a, sink),
            Build::Action => {
                if let Some(other) = &self.ks.action {
                    sink.error_help(
                        &span,
                        format!(
                            "\"{}\" cannot be used with \"{}\" (at {}): there can be only one",
                            spec.name,
                            other.kind.command(),
                            other.span
                        ),
                        "a kickstart has exactly one of install, upgrade and installorupgrade",
                    );
                    return;
                }
                self.ks.action = action(spec.name, &a, span, sink);
            }
            Build::Clearpart => {
                if let Some(c) = clearpart(&a, span) {
                    self.ks.clearpart.push(c);
                }
            }
            Build::Part => {
                if let Some(p) = part(&a, span, sink) {
                    self.ks.parts.push(p);
                }
            }
            Build::Network => self.ks.network = network(&a, span, sink),
            Build::Keyboard => self.ks.keyboard = keyboard(&a, span, sink),
            Build::Serialnum => match a.value("esx") {
                Some(esx) => {
                    self.ks.serial_number = Some(SerialNumber {
                        esx: esx.to_string(),
                        span,
                    })
                }
                None => needs(
                    &a,
                    &["esx"],
                    &span,
                    "serialnum needs --esx",
                    "serialnum --esx=XXXXX-XXXXX-XXXXX-XXXXX-XXXXX",
                    sink,
                ),
            },
            Build::Reboot => {
                self.ks.reboot = Some(Reboot {
                    no_eject: a.has("noeject"),
                    span,
                })
            }
            Build::Paranoid => self.ks.paranoid = Some(span),
            Build::Dryrun => self.ks.dryrun = Some(span),
            Build::PartitionEmbed => self.ks.partition_embed = Some(span),
            Build::PostScript => {
                if let Some(s) = script(inv, &a, ScriptKind::Post, sink) {
                    self.ks.scripts.push(s);
                }
            }
            Build::FirstbootScript => {
                if let Some(s) = script(inv, &a, ScriptKind::Firstboot, sink) {
                    self.ks.scripts.push(s);
                }
            }
            Build::ByReader | Build::Ignored => {}
        }
    }
}

/// Why a `#` in a password matters, said without showing the password.
const COMMENT_CUTS: &str = "the rest of the line after `#` is a comment: quote the password";
const QUOTE_HELP: &str = "e.g. rootpw 'my pass#word' (single quotes keep every character)";

/// A template placeholder where the root password should be (`rootpw {{.Password}}`): always an
/// error, whatever the password checks would say (`{{.Password}}` passes them all), so that a
/// file that was never rendered cannot install a root password anyone can read in the
/// template. Returns whether one was found. The words are joined again because the lexer
/// splits `{{ .Password }}` at its spaces; the copy is wiped when it goes.
fn rootpw_placeholder(inv: &Invocation, sink: &mut Sink) -> bool {
    let words: Vec<&Arg> = inv
        .args
        .iter()
        .filter(|w| !w.text.eq_ignore_ascii_case("--iscrypted"))
        .collect();
    let mut joined = zeroize::Zeroizing::new(String::new());
    let mut starts = Vec::with_capacity(words.len());
    for w in &words {
        if !joined.is_empty() {
            joined.push(' ');
        }
        starts.push(joined.len());
        joined.push_str(&w.text);
    }
    let Some((at, p)) = template::find(&joined) else {
        return false;
    };
    let span = starts
        .iter()
        .rposition(|s| *s <= at)
        .and_then(|i| words.get(i))
        .map_or(&inv.span, |w| &w.span);
    sink.error_help(
        span,
        format!("the root password {}", p.explain()),
        "render the template with its tool first: ksinstall never installs a placeholder as the root password",
    );
    true
}

fn rootpw(inv: &Invocation, a: &Args, sink: &mut Sink) -> Option<RootPassword> {
    let span = inv.span.clone();
    let Some(pw) = &a.positional else {
        let r = password::Refusal::Empty;
        match &inv.comment {
            Some(_) => sink.error_help(
                &span,
                format!("{}: {COMMENT_CUTS}", r.message()),
                QUOTE_HELP,
            ),
            None => {
                sink.error(&span, r.message());
                if let Some(h) = r.help() {
                    sink.help(h);
                }
            }
        }
        return None;
    };
    // `rootpw abc#def` sets `abc` on ESXi. Nobody writes a comment without a space before it,
    // so the author meant a password holding `#`: refused rather than installing another one.
    if let Some(c) = inv.comment.as_ref().filter(|c| c.in_word) {
        sink.error_help(
            &c.span,
            format!("the root password is cut short: {COMMENT_CUTS}"),
            QUOTE_HELP,
        );
        return None;
    }
    if a.has("iscrypted") {
        if crypt_form(&pw.text).is_none() {
            sink.error_help(
                &pw.span,
                "crypted password is not valid",
                "--iscrypted takes an MD5 ($1$...), SHA-512 ($6$salt$ with 86 characters) or 13-character DES crypt hash, e.g. from `openssl passwd -6`",
            );
            return None;
        }
        return Some(RootPassword {
            hash: pw.text.clone(),
            span,
        });
    }
    if let Err(r) = password::check_plain(&pw.text) {
        sink.error(&pw.span, r.message());
        if let Some(h) = r.help() {
            sink.help(h);
        }
        return None;
    }
    match password::sha512_crypt(&pw.text) {
        Ok(hash) => Some(RootPassword { hash, span }),
        Err(e) => {
            sink.error(&pw.span, format!("{e:#}"));
            None
        }
    }
}

fn action(name: &str, a: &Args, span: Span, sink: &mut Sink) -> Option<Action> {
    let kind = match name {
        "install" => ActionKind::Install,
        "upgrade" => ActionKind::Upgrade,
        _ => ActionKind::InstallOrUpgrade,
    };
    let mut act = Action::new(kind, span.clone());
    act.target = match (a.value("disk"), a.value("firstdisk")) {
        (Some(d), _) => Some(DiskTarget::Disk(d.to_string())),
        (None, Some(f)) => Some(DiskTarget::FirstDisk(split_list(f, true))),
        (None, None) => {
            // ESXi cannot pick a disk without one of them; refusing here is the safe choice.
            needs(
                a,
                &["disk", "firstdisk"],
                &span,
                &format!("{name} needs --disk (or --drive) or --firstdisk"),
                &format!("e.g. `{name} --firstdisk --overwritevmfs`"),
                sink,
            );
            None
        }
    };
    // `--ignoressd` with `--disk` is refused by the grammar's exclusive pairs; with no disk
    // option at all, the missing disk is the one problem, reported above.
    act.ignore_ssd = a.has("ignoressd");
    act.overwrite_vmfs = a.has("overwritevmfs");
    act.preserve_vmfs = a.has("preservevmfs");
    act.no_vmfs_on_disk = a.has("novmfsondisk");
    act.overwrite_vsan = a.has("overwritevsan");
    act.ignore_prereq_warnings = a.has("ignoreprereqwarnings");
    act.ignore_prereq_errors = a.has("ignoreprereqerrors");
    act.force_unsupported_install = a.has("forceunsupportedinstall");
    act.force_migrate = a.has("forcemigrate");
    act.system_disk = a.value("systemdisk").map(str::to_string);
    act.repartition_system_disk = a.has("repartitionsystemdisk");
    act.delete_cos_vmdk = a.has("deletecosvmdk");
    act.disk_booted_from = a.has("diskBootedFrom");
    act.save_bootbank = a.value("savebootbank").map(str::to_string);
    if let Some(o) = a.get("dpuPciSlots") {
        let slots = split_list(o.value.as_deref().unwrap_or(""), false);
        if slots.len() > 1 {
            sink.error_help(
                &o.span,
                format!(
                    "--dpuPciSlots names {} slots; ESXi 8 supports at most one DPU per host",
                    slots.len()
                ),
                "name the one slot that holds the DPU",
            );
        }
        if let Some(bad) = slots.iter().find(|s| {
            !s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c))
        }) {
            sink.error(
                &o.span,
                format!("--dpuPciSlots value \"{bad}\" is not a PCIe slot id"),
            );
        }
        act.dpu_pci_slots = slots;
    }
    if let (Some(o), false) = (a.get("repartitionsystemdisk"), a.has("systemdisk")) {
        sink.lint(
            &o.span,
            "\"--repartitionsystemdisk\" has no effect without \"--systemdisk\"",
            None,
        );
    }
    Some(act)
}

fn clearpart(a: &Args, span: Span) -> Option<ClearPart> {
    let target = if let Some(v) = a.value("drives") {
        ClearTarget::Drives(split_list(v, false))
    } else if a.has("alldrives") {
        ClearTarget::AllDrives
    } else if let Some(v) = a.value("ignoredrives") {
        ClearTarget::IgnoreDrives(split_list(v, false))
    } else if let Some(v) = a.value("firstdisk") {
        ClearTarget::FirstDisk(split_list(v, true))
    } else {
        return None;
    };
    Some(ClearPart {
        target,
        overwrite_vmfs: a.has("overwritevmfs"),
        span,
    })
}

fn part(a: &Args, span: Span, sink: &mut Sink) -> Option<Part> {
    let name = a.positional.as_ref()?;
    let n = &name.text;
    if n.is_empty() || n.contains('/') || n.starts_with(' ') || n.ends_with(' ') {
        sink.error(&name.span, format!("datastore name \"{n}\" is not valid: it must not be empty, contain `/`, or start or end with a space"));
        return None;
    }
    let target = match (a.value("ondisk"), a.value("onfirstdisk")) {
        (Some(d), _) => DiskTarget::Disk(d.to_string()),
        (None, Some(f)) => DiskTarget::FirstDisk(split_list(f, true)),
        (None, None) => {
            needs(
                a,
                &["ondisk", "onfirstdisk"],
                &span,
                "part needs --ondisk (or --ondrive) or --onfirstdisk",
                "e.g. `part datastore2 --ondisk=naa.xxxx`",
                sink,
            );
            return None;
        }
    };
    Some(Part {
        datastore: n.clone(),
        target,
        span,
    })
}

fn keyboard(a: &Args, span: Span, sink: &mut Sink) -> Option<Keyboard> {
    let arg = a.positional.as_ref()?;
    if let Some(known) = KEYBOARDS.iter().find(|k| k.eq_ignore_ascii_case(&arg.text)) {
        return Some(Keyboard {
            layout: known.to_string(),
            span,
        });
    }
    if arg.text.ends_with(".map.gz") {
        // A keymap file name; which files ESXi ships is not listed in our sources.
        return Some(Keyboard {
            layout: arg.text.clone(),
            span,
        });
    }
    let joined: Vec<&str> = a
        .extras
        .iter()
        .map(|e| e.text.as_str())
        .chain(std::iter::once(arg.text.as_str()))
        .collect();
    let joined = joined.join(" ");
    let msg = format!(
        "keyboard layout \"{}\" is not known; the default (US Default) is used",
        arg.text
    );
    match KEYBOARDS.iter().find(|k| k.eq_ignore_ascii_case(&joined)) {
        Some(k) => sink.warn_help(
            &arg.span,
            msg,
            format!("quote names with spaces: keyboard '{k}'"),
        ),
        None => match super::diag::did_you_mean(&arg.text, KEYBOARDS.iter().copied()) {
            Some(k) => sink.warn_help(&arg.span, msg, format!("did you mean '{k}'?")),
            None => sink.warn(&arg.span, msg),
        },
    }
    None
}

/// The message for a value that is refused: a template placeholder left in it is named, since
/// that is the cause to fix.
fn refused_value(option: &str, v: &str, usual: &str) -> String {
    match template::find_open(v) {
        Some((_, p)) => format!("--{option} \"{v}\" {}", p.explain()),
        None => format!("--{option} \"{v}\" {usual}"),
    }
}

fn parse_ip(a: &Args, name: &str, sink: &mut Sink) -> Option<Ipv4Addr> {
    let o = a.get(name)?;
    let v = o.value.as_deref()?;
    match v.parse::<Ipv4Addr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            sink.error(&o.span, refused_value(name, v, "is not an IPv4 address"));
            None
        }
    }
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `--device`: `Err` when it is given but unusable (reported).
fn net_device(a: &Args, sink: &mut Sink) -> Result<Option<NetDevice>, ()> {
    let Some(o) = a.get("device") else {
        return Ok(None);
    };
    let v = o.value.as_deref().unwrap_or("");
    if v.contains(':') {
        if is_mac(v) {
            return Ok(Some(NetDevice::Mac(v.to_ascii_lowercase())));
        }
        sink.error(&o.span, refused_value("device", v, "is not a MAC address"));
        return Err(());
    }
    if v.strip_prefix("vmnic")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return Ok(Some(NetDevice::Vmnic(v.to_string())));
    }
    sink.error_help(
        &o.span,
        refused_value("device", v, "is neither a vmnicN name nor a MAC address"),
        "e.g. --device=vmnic0 or --device=00:50:56:aa:bb:cc",
    );
    Err(())
}

/// `--vlanid`: `Err` when it is given but out of range (reported).
fn vlan_id(a: &Args, sink: &mut Sink) -> Result<Option<u16>, ()> {
    let Some(o) = a.get("vlanid") else {
        return Ok(None);
    };
    match o
        .value
        .as_deref()
        .and_then(|v| v.parse::<u16>().ok())
        .filter(|v| *v <= 4095)
    {
        Some(v) => Ok(Some(v)),
        None => {
            sink.error(&o.span, "--vlanid must be between 0 and 4095");
            Err(())
        }
    }
}

/// `network` (spec §0.10 and §1.2): DHCP by default; static needs an address, and the gateway
/// must be on the address's subnet.
fn network(a: &Args, span: Span, sink: &mut Sink) -> Option<Network> {
    let bootproto = match a.value("bootproto").map(str::to_ascii_lowercase).as_deref() {
        Some("static") => BootProto::Static,
        Some(_) => BootProto::Dhcp,
        None => {
            sink.lint(&span, "network has no --bootproto; DHCP is used", None);
            sink.about("bootproto");
            BootProto::Dhcp
        }
    };
    let device = net_device(a, sink);
    let vlan_id = vlan_id(a, sink);
    let mut ok = device.is_ok() && vlan_id.is_ok();
    let add_vm_portgroup = a
        .value("addvmportgroup")
        .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
        .unwrap_or(true);
    let mut net = Network {
        bootproto,
        device: device.unwrap_or_default(),
        ip: None,
        netmask: None,
        gateway: None,
        nameservers: Vec::new(),
        hostname: a.value("hostname").map(str::to_string),
        vlan_id: vlan_id.unwrap_or_default(),
        add_vm_portgroup,
        span: span.clone(),
    };
    if let Some(o) = a.get("nameserver") {
        for ns in split_list(o.value.as_deref().unwrap_or(""), false) {
            match ns.parse::<Ipv4Addr>() {
                Ok(ip) => net.nameservers.push(ip),
                Err(_) => {
                    sink.error(
                        &o.span,
                        refused_value("nameserver", &ns, "is not an IPv4 address"),
                    );
                    ok = false;
                }
            }
        }
        if net.nameservers.len() > 2 {
            sink.warn(&o.span, "only the first two name servers are used");
            net.nameservers.truncate(2);
        }
    }
    // Warnings about the gateway and host name filled in: said only when the address they are
    // about is usable (a bad --hostname does not make the computed gateway less true).
    // (message, the option it is about)
    let mut defaults: Vec<(String, &str)> = Vec::new();
    let address_ok = match bootproto {
        BootProto::Dhcp => dhcp(a, &mut net, sink),
        BootProto::Static => static_address(a, &mut net, &mut defaults, sink)?,
    };
    if ok && address_ok {
        for (d, option) in defaults {
            sink.warn(&span, d);
            sink.about(option);
        }
    }
    let host_ok = hostname_ok(a, &net, sink);
    if !(ok && address_ok && host_ok) {
        return None;
    }
    Some(net)
}

fn dhcp(a: &Args, net: &mut Network, sink: &mut Sink) -> bool {
    let mut ok = true;
    for k in ["ip", "netmask", "gateway"] {
        if let Some(o) = a.get(k) {
            sink.error_help(
                &o.span,
                format!("\"--{k}\" is invalid with --bootproto=dhcp"),
                "use --bootproto=static for a fixed address",
            );
            ok = false;
        }
    }
    for k in ["hostname", "nameserver"] {
        if let Some(o) = a.get(k) {
            sink.warn(
                &o.span,
                format!("\"--{k}\" is ignored with --bootproto=dhcp"),
            );
        }
    }
    net.hostname = None;
    net.nameservers.clear();
    ok
}

/// The static address, netmask and gateway: `None` when there is no usable address at all,
/// otherwise whether the rest is sound. Defaults filled in go to `defaults`.
fn static_address(
    a: &Args,
    net: &mut Network,
    defaults: &mut Vec<(String, &'static str)>,
    sink: &mut Sink,
) -> Option<bool> {
    let span = net.span.clone();
    net.ip = parse_ip(a, "ip", sink);
    net.netmask = parse_ip(a, "netmask", sink);
    net.gateway = parse_ip(a, "gateway", sink);
    let Some(ip) = net.ip else {
        if !a.has("ip") {
            needs(
                a,
                &["ip"],
                &span,
                "--bootproto=static needs --ip",
                "add --ip=ADDRESS --netmask=MASK --gateway=ADDRESS",
                sink,
            );
        }
        return None;
    };
    let mut ok = true;
    if let Some(o) = a.get("netmask") {
        if let Some(m) = net.netmask {
            if u32::from(m).leading_ones() + u32::from(m).trailing_zeros() != 32
                || u32::from(m) == 0
            {
                sink.error(&o.span, format!("--netmask {m} is not a valid netmask"));
                ok = false;
            }
        }
    } else {
        // Said even when the line has errors: the netmask assumed is what the address and the
        // gateway were checked against.
        sink.warn(
            &span,
            format!(
                "network has no --netmask; the classful {} is used",
                classful_netmask(ip)
            ),
        );
        sink.about("netmask");
    }
    let mask = u32::from(net.effective_netmask().unwrap_or(classful_netmask(ip)));
    let host = u32::from(ip) & !mask;
    if mask != u32::MAX && (host == 0 || host == !mask) {
        sink.error(
            &a.get("ip").map(|o| o.span.clone()).unwrap_or(span.clone()),
            format!("--ip {ip} is the network or broadcast address of its subnet"),
        );
        ok = false;
    }
    match (net.gateway, a.get("gateway")) {
        (Some(gw), Some(o)) => {
            if u32::from(gw) & mask != u32::from(ip) & mask {
                sink.error_help(
                    &o.span,
                    format!(
                        "--gateway {gw} is not on the subnet of --ip {ip} with netmask {}",
                        Ipv4Addr::from(mask)
                    ),
                    "the gateway must be on the same subnet as the address",
                );
                ok = false;
            } else if gw == ip {
                sink.error(&o.span, format!("--gateway {gw} is the host's own address"));
                ok = false;
            }
        }
        (None, None) => {
            if let Some(g) = net.effective_gateway() {
                defaults.push((format!("network has no --gateway; {g} is used"), "gateway"));
            }
        }
        _ => ok = false,
    }
    if net.hostname.is_none() {
        defaults.push((
            "network has no --hostname; \"localhost\" is used".into(),
            "hostname",
        ));
    }
    Some(ok)
}

fn hostname_ok(a: &Args, net: &Network, sink: &mut Sink) -> bool {
    let Some(h) = &net.hostname else {
        return true;
    };
    let valid = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid {
        let at = a
            .get("hostname")
            .map(|o| o.span.clone())
            .unwrap_or(net.span.clone());
        sink.error(
            &at,
            refused_value("hostname", h, "is not a valid host name"),
        );
    }
    valid
}

/// A section: its options were parsed once, by the caller, so each is reported once.
fn script(inv: &Invocation, a: &Args, kind: ScriptKind, sink: &mut Sink) -> Option<Script> {
    let interpreter = match a.value("interpreter") {
        Some("python") => Interpreter::Python,
        Some(_) => Interpreter::Busybox,
        None => {
            // A refused --interpreter has been reported already: one problem, one diagnostic.
            if !a.has("interpreter") && a.refused("interpreter").is_none() {
                sink.warn(
                    &inv.span,
                    format!("{} has no --interpreter; busybox is used", kind.section()),
                );
            }
            Interpreter::Busybox
        }
    };
    let body = inv.body.clone().unwrap_or_default();
    lint_body(inv, kind, &body, sink);
    Some(Script {
        kind,
        interpreter,
        timeout_secs: match a.get("timeout") {
            None => None,
            Some(o) => match o.value.as_deref().map(str::parse::<u64>) {
                Some(Ok(t)) => Some(t),
                _ => {
                    sink.error(&o.span, "--timeout is too large");
                    None
                }
            },
        },
        ignore_failure: a
            .value("ignorefailure")
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        body,
        span: inv.span.clone(),
    })
}

/// Commands written after a section are part of its script (spec §0.6), which is rarely what
/// the author meant: `reboot` at the end of a `%firstboot` reboots the host at its first boot.
/// ESXi says nothing; we warn, since the mistake is silent until it bites.
const KICKSTART_ONLY: &[&str] = &[
    "vmaccepteula",
    "accepteula",
    "rootpw",
    "install",
    "installorupgrade",
    "upgrade",
    "clearpart",
    "part",
    "partition",
    "network",
    "keyboard",
    "serialnum",
    "vmserialnum",
    "reboot",
    "paranoid",
    "dryrun",
];

/// Commands only ESXi's own installer environment (and ESXi) has: a `%pre` or `%post` that uses
/// them fails in ours. `%firstboot` runs on the installed ESXi, where they exist.
const ESXI_ONLY: &[&str] = &["esxcli", "localcli", "vim-cmd", "vmkfstools"];

/// What a line of a `%pre`/`%post` script uses that only ESXi's installer environment has:
/// one of [`ESXI_ONLY`] as a word (also as `/bin/esxcli`), or a path under `/vmfs/`. Comment
/// lines are skipped.
pub fn esxi_only_use(line: &str) -> Option<&'static str> {
    if line.trim_start().starts_with('#') {
        return None;
    }
    let words = line.split(|c: char| !(c.is_ascii_alphanumeric() || "-_./".contains(c)));
    for w in words {
        let name = w.rsplit('/').next().unwrap_or(w);
        if let Some(cmd) = ESXI_ONLY.iter().find(|c| **c == name) {
            return Some(cmd);
        }
    }
    line.contains("/vmfs/").then_some("/vmfs/")
}

/// The warning for a script line [`esxi_only_use`] flags.
pub fn esxi_only_message(kind: ScriptKind, what: &str) -> String {
    format!(
        "{} uses {what}, which only ESXi's own installer has: ksinstall runs {} scripts in its Linux installer environment (docs/IMAGE.md), where this line fails",
        kind.section(),
        kind.section()
    )
}

fn lint_body(inv: &Invocation, kind: ScriptKind, body: &str, sink: &mut Sink) {
    for (i, line) in body.lines().enumerate() {
        let span = Span {
            file: inv.span.file.clone(),
            line: inv
                .span
                .line
                .saturating_add(u32::try_from(i + 1).unwrap_or(u32::MAX)),
            col: 1,
        };
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some(what) = esxi_only_use(line).filter(|_| kind != ScriptKind::Firstboot) {
            sink.lint(
                &span,
                esxi_only_message(kind, what),
                Some("move it to %firstboot (it runs on the installed ESXi), or do it another way here"),
            );
        }
        if line.trim_end() == "%end" {
            sink.lint(
                &span,
                format!("`%end` does not end a section in an ESXi kickstart: it is part of the {} script", kind.section()),
                Some("remove it; a section ends at the next line starting with %pre, %post, %firstboot or %include"),
            );
        } else if line.starts_with(first)
            && KICKSTART_ONLY.contains(&first)
            && (first != "reboot" || kind != ScriptKind::Post)
        {
            sink.lint(
                &span,
                format!("\"{first}\" here runs as script text inside the {} section begun at line {}, not as a kickstart command", kind.section(), inv.span.line),
                Some("kickstart commands go before the first %pre/%post/%firstboot section"),
            );
        }
    }
}
