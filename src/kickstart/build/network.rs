//! `network`: DHCP or a static address, the device, the VLAN, name servers and host name.

use std::net::Ipv4Addr;

use super::shared::{needs, split_list};
use crate::kickstart::args::Args;
use crate::kickstart::diag::{Sink, Span};
use crate::kickstart::model::*;
use crate::kickstart::template;

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
pub(super) fn network(a: &Args, span: Span, sink: &mut Sink) -> Option<Network> {
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
