//! The host's network interfaces as ESXi will number them: every interface below
//! `sys/class/net` that is a PCI function, in PCI address order, gets `vmnicN`. ESXi numbers
//! its uplinks by PCI order too; that it gives exactly these numbers on every server is
//! UNCONFIRMED (docs/FIRSTBOOT.md), so the first-boot configuration names the NIC by its MAC as
//! well.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::sysroot::{self, Sysroot};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    /// The Linux name (`eth0`, `enp3s0`).
    pub name: String,
    /// Lower case, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// The PCI function (`0000:3b:00.0`), for interfaces that are one.
    pub pci: Option<String>,
    /// The name ESXi is expected to give it (`vmnic0`): PCI functions only.
    pub vmnic: Option<String>,
    /// `carrier` reads 1 (link up); `None` when the interface is down or it was not recorded.
    pub link: Option<bool>,
}

pub(crate) fn read_nics(sys: &Sysroot) -> Vec<Nic> {
    let net = Path::new("sys/class/net");
    let mut nics: Vec<Nic> = sysroot::mac_addresses(sys)
        .into_iter()
        .map(|(name, mac)| {
            let dir = net.join(&name);
            let pci = sys
                .resolve(&dir.join("device"))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .filter(|n| is_pci_address(n));
            let link = sys
                .attr(&dir.join("carrier"))
                .ok()
                .flatten()
                .map(|c| c == "1");
            Nic {
                name,
                mac,
                pci,
                vmnic: None,
                link,
            }
        })
        .collect();
    nics.sort_by(|a, b| {
        (a.pci.is_none(), a.pci.as_deref(), a.name.as_str()).cmp(&(
            b.pci.is_none(),
            b.pci.as_deref(),
            b.name.as_str(),
        ))
    });
    for (n, nic) in nics.iter_mut().filter(|n| n.pci.is_some()).enumerate() {
        nic.vmnic = Some(format!("vmnic{n}"));
    }
    nics
}

/// `0000:3b:00.0`
fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12 && b[4] == b':' && b[7] == b':' && b[10] == b'.'
}
