//! The answers as the console holds them: the password and network forms, the VMFS choice.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmfsChoice {
    /// The disk holds an ESXi that can be upgraded: the new image into the other boot bank.
    Upgrade,
    Overwrite,
    Preserve,
    Back,
}

/// What the scripted path reads from the machine, the console reads too (the library's
/// `install::prepare`).
pub type Context = ksinstall::install::Prepared;

/// The two password fields. The plain text lives only here, while typed; it is wiped as soon
/// as it is hashed (and when the form is dropped), and never drawn (only as `*`). The fields
/// have room for any password up front, so typing never leaves a copy in a freed buffer.
pub struct PasswordForm {
    pub first: Zeroizing<String>,
    pub second: Zeroizing<String>,
    /// 0: first field, 1: confirmation.
    pub focus: usize,
    pub error_first: Option<String>,
    pub error_second: Option<String>,
}

impl Default for PasswordForm {
    fn default() -> PasswordForm {
        PasswordForm {
            first: Zeroizing::new(String::with_capacity(PASSWORD_ROOM)),
            second: Zeroizing::new(String::with_capacity(PASSWORD_ROOM)),
            focus: 0,
            error_first: None,
            error_second: None,
        }
    }
}

/// Bytes a password field holds without growing (a longer one still works, but may leave a
/// copy behind when its buffer grows).
const PASSWORD_ROOM: usize = 1024;

impl PasswordForm {
    pub(super) fn clear(&mut self) {
        // Zeroizing<String> wipes the whole buffer, then empties it; the capacity stays.
        self.first.zeroize();
        self.second.zeroize();
        self.focus = 0;
    }
}

/// The network screen's fields, as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetField {
    Mode,
    Ip,
    Netmask,
    Gateway,
    Nameservers,
    Hostname,
    Vlan,
}

impl NetField {
    pub fn label(self) -> &'static str {
        match self {
            NetField::Mode => "Configuration",
            NetField::Ip => "IPv4 address",
            NetField::Netmask => "Subnet mask",
            NetField::Gateway => "Default gateway",
            NetField::Nameservers => "DNS servers",
            NetField::Hostname => "Host name",
            NetField::Vlan => "VLAN ID",
        }
    }
    /// The kickstart option each field becomes.
    pub(super) fn option(self) -> &'static str {
        match self {
            NetField::Mode => "bootproto",
            NetField::Ip => "ip",
            NetField::Netmask => "netmask",
            NetField::Gateway => "gateway",
            NetField::Nameservers => "nameserver",
            NetField::Hostname => "hostname",
            NetField::Vlan => "vlanid",
        }
    }
}

#[derive(Default)]
pub struct NetworkForm {
    pub dhcp: bool,
    pub ip: String,
    pub netmask: String,
    pub gateway: String,
    pub nameservers: String,
    pub hostname: String,
    pub vlan: String,
    pub focus: usize,
    /// (field, message, is_error) next to the field that caused it.
    pub notes: Vec<(NetField, String, bool)>,
}

impl NetworkForm {
    /// The fields shown: DHCP takes no address, name servers or host name (kickstart refuses or
    /// ignores them).
    pub fn fields(&self) -> Vec<NetField> {
        if self.dhcp {
            vec![NetField::Mode, NetField::Vlan]
        } else {
            vec![
                NetField::Mode,
                NetField::Ip,
                NetField::Netmask,
                NetField::Gateway,
                NetField::Nameservers,
                NetField::Hostname,
                NetField::Vlan,
            ]
        }
    }
    pub fn value(&self, f: NetField) -> &str {
        match f {
            NetField::Mode => {
                if self.dhcp {
                    "DHCP"
                } else {
                    "Static"
                }
            }
            NetField::Ip => &self.ip,
            NetField::Netmask => &self.netmask,
            NetField::Gateway => &self.gateway,
            NetField::Nameservers => &self.nameservers,
            NetField::Hostname => &self.hostname,
            NetField::Vlan => &self.vlan,
        }
    }
    pub(super) fn value_mut(&mut self, f: NetField) -> Option<&mut String> {
        match f {
            NetField::Mode => None,
            NetField::Ip => Some(&mut self.ip),
            NetField::Netmask => Some(&mut self.netmask),
            NetField::Gateway => Some(&mut self.gateway),
            NetField::Nameservers => Some(&mut self.nameservers),
            NetField::Hostname => Some(&mut self.hostname),
            NetField::Vlan => Some(&mut self.vlan),
        }
    }
    pub fn focused(&self) -> NetField {
        let fields = self.fields();
        fields[self.focus.min(fields.len() - 1)]
    }

    /// The `network` line, and the column range each field's option occupies in it, so that a
    /// diagnostic's column says which field it is about.
    pub(super) fn line(&self) -> (String, Vec<(NetField, u32, u32)>) {
        let mut line = String::from("network");
        let mut spans = Vec::new();
        for f in self.fields() {
            let value = match f {
                NetField::Mode => (if self.dhcp { "dhcp" } else { "static" }).to_string(),
                _ => self.value(f).trim().to_string(),
            };
            if value.is_empty() {
                continue;
            }
            line.push(' ');
            let start = line.chars().count() as u32 + 1;
            line.push_str(&format!("--{}={}", f.option(), quote(&value)));
            spans.push((f, start, line.chars().count() as u32));
        }
        (line, spans)
    }
}

/// Quote a value for the kickstart reader (POSIX shlex), as the printer does.
pub(super) fn quote(v: &str) -> String {
    if !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || "'\"\\#".contains(c)) {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\"'\"'"))
    }
}

/// The answers so far.
#[derive(Default)]
pub struct Answers {
    pub disk: Option<usize>,
    pub vmfs: Option<VmfsChoice>,
    pub keyboard: usize,
    /// `$6$…`: the only form the root password is kept in.
    pub root_hash: Option<String>,
}
