//! What `interactive --save-ks FILE` writes. By default a kickstart that repeats across a
//! fleet: the disk by a `--firstdisk` rule (its model, else its vendor) that picks the chosen
//! disk on this host, and no address or host name unless static addressing was chosen. With
//! `--save-ks-exact`, this host's answers as they are. See docs/CONSOLE.md.

use std::path::Path;

use ksinstall::inventory::{select, Disk, Inventory};
use ksinstall::kickstart::{self, BootProto, DiskTarget, Kickstart};

/// Which kickstart `--save-ks` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// For other hosts: the disk by a rule, no per-host address unless chosen static.
    Fleet,
    /// This host's answers: its disk by name, its address and host name.
    Exact,
}

/// Where and in which form the answers are saved.
#[derive(Debug, Clone, Copy)]
pub struct SaveKs<'a> {
    pub path: &'a Path,
    pub form: Form,
}

/// `--firstdisk` keywords: a model or vendor spelled like one would not be matched by name.
const KEYWORDS: [&str; 6] = ["local", "remote", "usb", "esx", "localesx", "remoteesx"];

/// The name a saved kickstart goes by when it is read back to check it.
const SAVED_NAME: &str = "saved";

/// A `--firstdisk` filter that picks the chosen disk on this host.
#[derive(Debug)]
struct Rule {
    /// The model or vendor as the disk reports it (trimmed); the reader lower-cases it.
    filter: String,
    /// "model" or "vendor".
    by: &'static str,
    /// How many disks here the filter matches; the chosen one is the first.
    matches: usize,
}

/// The kickstart to save, from the one the plan was made of. `chosen` is the disk the user
/// chose, one of `inventory.disks`. The root password is in `ks` only as its hash.
pub fn text(ks: &Kickstart, inventory: &Inventory, chosen: &Disk, form: Form) -> String {
    match form {
        Form::Exact => kickstart::print(ks),
        Form::Fleet => fleet_text(ks, inventory, chosen),
    }
}

fn fleet_text(ks: &Kickstart, inventory: &Inventory, chosen: &Disk) -> String {
    let why_not = match disk_rule(&inventory.disks, chosen) {
        Ok(rule) => {
            let target = DiskTarget::FirstDisk(vec![rule.filter.clone()]);
            let text = render(ks, target, &rule_comment(&rule, chosen));
            // Read back as `install --ks` will: it must choose this very disk here.
            match chosen_by(&text, inventory) {
                Ok(d) if d.device == chosen.device => return text,
                Ok(d) => format!(
                    "--firstdisk={} read back chose {}",
                    rule.filter, d.kernel_name
                ),
                Err(e) => format!("--firstdisk={} read back: {e}", rule.filter),
            }
        }
        Err(why) => why,
    };
    let target = DiskTarget::Disk(chosen.name.clone());
    render(ks, target, &fallback_comment(&why_not))
}

/// The first of the chosen disk's model and vendor that, as the only `--firstdisk` filter,
/// picks it on this host; else why none does.
fn disk_rule(disks: &[Disk], chosen: &Disk) -> Result<Rule, String> {
    let mut tried = Vec::new();
    for (by, value) in [("model", &chosen.model), ("vendor", &chosen.vendor)] {
        let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        // The reader splits the list at commas; a keyword would not match by name.
        if v.contains(',') || KEYWORDS.contains(&v.to_lowercase().as_str()) {
            tried.push(format!("its {by} {v:?} cannot be a filter"));
            continue;
        }
        match select::first_disk(disks, &[v.to_string()], false, false) {
            Ok(c) if c.disk.device == chosen.device => {
                return Ok(Rule {
                    filter: v.to_string(),
                    by,
                    matches: c.candidates.len(),
                })
            }
            Ok(c) => tried.push(format!("{by} {v:?} picks {} first", c.disk.kernel_name)),
            Err(_) => tried.push(format!("{by} {v:?} picks no disk")),
        }
    }
    if tried.is_empty() {
        Err("the disk reports no model or vendor".into())
    } else {
        Err(tried.join("; "))
    }
}

/// The disk a saved kickstart's `install` line chooses on this host.
fn chosen_by<'a>(text: &str, inventory: &'a Inventory) -> Result<&'a Disk, String> {
    let mut loader = kickstart::FsLoader::new("/nonexistent");
    let parsed = kickstart::parse(SAVED_NAME, SAVED_NAME, text.as_bytes(), &mut loader, None);
    if let Some(e) = parsed.diagnostics.iter().find(|d| d.is_error()) {
        return Err(e.message.clone());
    }
    let Some(action) = &parsed.kickstart.action else {
        return Err("no install line".into());
    };
    match &action.target {
        Some(DiskTarget::Disk(name)) => inventory.resolve_disk(name).map_err(|e| e.to_string()),
        Some(DiskTarget::FirstDisk(filters)) => inventory
            .first_disk_choice(filters, action.ignore_ssd, false)
            .map(|c| c.disk)
            .map_err(|e| e.to_string()),
        None => Err("the install line names no disk".into()),
    }
}

fn rule_comment(rule: &Rule, chosen: &Disk) -> Vec<String> {
    let here = if rule.matches > 1 {
        format!(
            ", the first of the {} disks of that {} there",
            rule.matches, rule.by
        )
    } else {
        String::new()
    };
    vec![
        format!(
            "# The disk by a rule, not by this host's disk name: the first disk whose {} is {:?}.",
            rule.by, rule.filter
        ),
        format!(
            "# On the host this was saved on that is {} ({}){here}.",
            chosen.kernel_name, chosen.name
        ),
        "# A host without such a disk refuses the install and nothing is written.".into(),
    ]
}

fn fallback_comment(why: &str) -> Vec<String> {
    vec![
        "# The disk by this host's name: no --firstdisk rule picks it first here".into(),
        format!("# ({why})."),
        "# Give each other host its own --disk=NAME (`ksinstall probe` lists the disks).".into(),
    ]
}

const STATIC_COMMENT: [&str; 2] = [
    "# per-host: static addressing was chosen, so the address and host name are this host's.",
    "# Give each host its own (or --bootproto=dhcp) before installing another host with it.",
];

/// `ks` printed with `target` on its install line, each remark above the line it is about.
fn render(ks: &Kickstart, target: DiskTarget, disk_comment: &[String]) -> String {
    let mut ks = ks.clone();
    let mut install = None;
    if let Some(a) = ks.action.as_mut() {
        a.target = Some(target);
        install = Some(format!("{} ", a.kind.command()));
    }
    let per_host = ks
        .network
        .as_ref()
        .is_some_and(|n| n.bootproto == BootProto::Static);
    let mut out = String::new();
    for (i, line) in kickstart::print(&ks).lines().enumerate() {
        if i == 1 {
            out.push_str("# Saved by `ksinstall interactive --save-ks` for other hosts too.\n");
        }
        let remarks: Vec<&str> = if install.as_deref().is_some_and(|p| line.starts_with(p)) {
            disk_comment.iter().map(String::as_str).collect()
        } else if per_host && line.starts_with("network ") {
            STATIC_COMMENT.to_vec()
        } else {
            Vec::new()
        };
        for r in remarks {
            out.push_str(r);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ksinstall::kickstart::password;

    fn inventory(fixture: &str) -> Inventory {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(fixture);
        Inventory::read(&root).unwrap()
    }

    fn disk<'a>(inv: &'a Inventory, kernel: &str) -> &'a Disk {
        inv.disks.iter().find(|d| d.kernel_name == kernel).unwrap()
    }

    /// The console's kickstart for `disk`, parsed as the console parses it.
    fn console_ks(disk: &Disk, network: &str) -> Kickstart {
        let hash = password::sha512_crypt("Console-Pass-42x").unwrap();
        let text = format!(
            "vmaccepteula\nrootpw --iscrypted '{hash}'\ninstall --disk={} --overwritevmfs\n\
             keyboard 'US Default'\n{network}\n",
            disk.name
        );
        let mut loader = kickstart::FsLoader::new("/nonexistent");
        let parsed = kickstart::parse("console", "console", text.as_bytes(), &mut loader, None);
        assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
        parsed.kickstart
    }

    fn settings(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn the_disk_is_saved_as_its_model_and_the_rule_picks_it_here() {
        let inv = inventory("bluefield3");
        let sda = disk(&inv, "sda");
        let ks = console_ks(sda, "network --bootproto=dhcp");
        let text = text(&ks, &inv, sda, Form::Fleet);
        let s = settings(&text);
        assert!(
            s.contains(&"install --firstdisk=MR9560-16i --overwritevmfs"),
            "{text}"
        );
        assert!(
            s.contains(&"network --bootproto=dhcp --addvmportgroup=1"),
            "{text}"
        );
        assert!(
            text.contains("the first disk whose model is \"MR9560-16i\""),
            "{text}"
        );
        assert!(!text.contains("per-host"), "{text}");
        assert_eq!(chosen_by(&text, &inv).unwrap().device, sda.device);
        // The other disk, a NetApp LUN, by its own model.
        let sdb = disk(&inv, "sdb");
        let text = super::text(&console_ks(sdb, ""), &inv, sdb, Form::Fleet);
        assert!(
            text.contains("install --firstdisk='LUN C-Mode' --overwritevmfs"),
            "{text}"
        );
        assert_eq!(chosen_by(&text, &inv).unwrap().device, sdb.device);
    }

    #[test]
    fn the_first_of_two_twins_is_saved_by_model_the_second_by_its_name() {
        let inv = inventory("plain");
        let sda = disk(&inv, "sda");
        let text = text(&console_ks(sda, ""), &inv, sda, Form::Fleet);
        assert!(
            text.contains("install --firstdisk='Samsung SSD 870 EVO 1TB'"),
            "{text}"
        );
        assert!(
            text.contains("the first of the 2 disks of that model"),
            "{text}"
        );
        // sdb: its model and vendor both pick sda first, so the file names sdb.
        let sdb = disk(&inv, "sdb");
        let text = super::text(&console_ks(sdb, ""), &inv, sdb, Form::Fleet);
        assert!(
            settings(&text)
                .contains(&format!("install --disk={} --overwritevmfs", sdb.name).as_str()),
            "{text}"
        );
        assert!(
            !settings(&text).iter().any(|l| l.contains("--firstdisk")),
            "{text}"
        );
        assert!(
            text.contains("no --firstdisk rule picks it first here")
                && text.contains("model \"Samsung SSD 870 EVO 1TB\" picks sda first")
                && text.contains("vendor \"ATA\" picks sda first"),
            "{text}"
        );
        assert_eq!(chosen_by(&text, &inv).unwrap().device, sdb.device);
    }

    #[test]
    fn without_a_model_the_vendor_is_the_rule() {
        let mut inv = inventory("bluefield3");
        inv.disks[0].model = None;
        let sda = inv.disks[0].clone();
        let text = text(&console_ks(&sda, ""), &inv, &sda, Form::Fleet);
        assert!(text.contains("install --firstdisk=BROADCOM"), "{text}");
        assert!(text.contains("whose vendor is \"BROADCOM\""), "{text}");
        // A model spelled like a keyword is no filter.
        inv.disks[0].model = Some("local".into());
        inv.disks[0].vendor = None;
        let sda = inv.disks[0].clone();
        let text = super::text(&console_ks(&sda, ""), &inv, &sda, Form::Fleet);
        assert!(
            text.contains(&format!("install --disk={}", sda.name)),
            "{text}"
        );
        assert!(
            text.contains("its model \"local\" cannot be a filter"),
            "{text}"
        );
    }

    #[test]
    fn a_static_address_is_kept_and_marked_per_host_and_exact_is_the_plain_print() {
        let inv = inventory("bluefield3");
        let sda = disk(&inv, "sda");
        let ks = console_ks(
            sda,
            "network --bootproto=static --ip=10.1.2.3 --netmask=255.255.255.0 \
             --hostname=esx1.example",
        );
        let text = text(&ks, &inv, sda, Form::Fleet);
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("network "))
            .unwrap();
        assert!(
            lines[at].contains("--ip=10.1.2.3") && lines[at].contains("--hostname=esx1.example"),
            "{text}"
        );
        assert!(lines[at - 2].starts_with("# per-host:"), "{text}");
        // The rest of the model is what the console planned: read back, only the disk differs.
        let mut loader = kickstart::FsLoader::new("/nonexistent");
        let back = kickstart::parse("saved", "saved", text.as_bytes(), &mut loader, None);
        assert!(!back.has_errors(), "{:?}", back.diagnostics);
        assert_eq!(
            back.kickstart.network.as_ref().map(|n| n.ip),
            ks.network.as_ref().map(|n| n.ip)
        );
        assert_eq!(
            back.kickstart.root_password.map(|p| p.hash),
            ks.root_password.clone().map(|p| p.hash)
        );
        assert_eq!(
            super::text(&ks, &inv, sda, Form::Exact),
            kickstart::print(&ks)
        );
    }
}
