//! The installed host's first boot, modelled step by step as docs/FIRSTBOOT.md describes ESXi's
//! (6.7's `firstboot.py` and `kickstart.py`): a root holding ESXi's default `/etc/shadow` with
//! its six accounts and an empty `esx.conf`; the bank's archives laid over it in `boot.cfg`
//! order (GNU tar, every parent an entry, confined to `var/lib/vmware/firstboot/`); `copyFiles`;
//! root's hash field replaced; keyboard and license applied; `onetime.tgz` taken out of the
//! `boot.cfg` at `bootCfgPath`; then every executable file run, with ESXi's tools
//! (`esxcfg-info`, `vmkfstools`, `reboot`) standing in as small scripts that log what they were
//! asked. The archives are read with GNU tar and by hand, not with ksinstall's own reader.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::setup::Setup;
use common::text as output_text;
use common::{mcopy_out, run, MIB};

const PASSWORD: &str = "Plain-Secret-99x";
const P5: u64 = 208_896 * 512;
const ESXI_ACCOUNTS: [&str; 6] = ["root", "nobody", "nfsnobody", "dcui", "daemon", "vpxuser"];
const BOOT_DISK: &str = "mpx.vmhba0:C0:T0:L0";

fn full_ks() -> String {
    format!(
        "vmaccepteula\nrootpw '{PASSWORD}'\ninstall --firstdisk --overwritevmfs\n\
network --bootproto=static --ip=10.1.2.3 --netmask=255.255.255.0 --gateway=10.1.2.1 --hostname=esx1.lab.example --nameserver=10.1.2.2,10.1.2.4 --vlanid=42\n\
keyboard German\nserialnum --esx=AB1C2-DE3F4-GH5I6-JK7L8-MN9P0\n\
%firstboot --interpreter=busybox\necho \"busybox ran as $(id -u)\" > fb-busybox.out\n\
%firstboot --interpreter=python\nopen('fb-python.out', 'w').write('python ran')\n"
    )
}

fn bare_ks() -> String {
    format!("vmaccepteula\nrootpw '{PASSWORD}'\ninstall --firstdisk --overwritevmfs\n")
}

/// ESXi before its first boot: default accounts, an empty `esx.conf`, the bank at `/bootbank`.
fn esxi_root(dir: &Path, bank: &Path) -> PathBuf {
    let root = dir.join("esxi");
    for d in [
        "etc/vmware",
        "var/log",
        "bootbank",
        "vmfs/devices/disks",
        "fakebin",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let shadow: String = ESXI_ACCOUNTS
        .iter()
        .map(|a| format!("{a}:*:13358:0:99999:7:::\n"))
        .collect();
    std::fs::write(root.join("etc/shadow"), shadow).unwrap();
    std::fs::write(root.join("etc/vmware/esx.conf"), "").unwrap();
    std::fs::write(root.join("etc/hosts"), "127.0.0.1\tlocalhost\n").unwrap();
    std::fs::copy(bank.join("boot.cfg"), root.join("bootbank/boot.cfg")).unwrap();
    root
}

/// The bytes of a gzip'd tar, decompressed with the real gzip.
fn gunzip(path: &Path) -> Vec<u8> {
    let out = Command::new("gzip").arg("-dc").arg(path).output().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Each header of an uncompressed tar, read by hand: (name, type flag, mode, magic).
fn tar_headers(tar: &[u8]) -> Vec<(String, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() && tar[at..at + 512].iter().any(|&b| b != 0) {
        let h = &tar[at..at + 512];
        let name = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_string();
        let octal = |b: &[u8]| {
            u64::from_str_radix(String::from_utf8_lossy(b).trim_matches(['\0', ' ']), 8).unwrap()
        };
        let size = octal(&h[124..136]);
        out.push((
            name,
            h[156],
            octal(&h[100..108]) as u32,
            h[257..265].to_vec(),
        ));
        at += 512 + size.div_ceil(512) as usize * 512;
    }
    out
}

/// Step 1: lay the bank's archives over the root in `boot.cfg` order, as ESXi's boot takes
/// them. Returns `onetime.tgz`'s entries in archive order.
fn lay_modules(root: &Path, bank: &Path) -> Vec<(String, u8, u32)> {
    let cfg = std::fs::read_to_string(bank.join("boot.cfg")).unwrap();
    let modules: Vec<&str> = cfg
        .lines()
        .find_map(|l| l.strip_prefix("modules="))
        .unwrap()
        .split(" --- ")
        .collect();
    assert_eq!(
        modules.last(),
        Some(&"onetime.tgz"),
        "onetime.tgz last: {cfg}"
    );
    assert!(
        !modules.contains(&"state.tgz"),
        "no state.tgz on a fresh install"
    );
    let tar = gunzip(&bank.join("onetime.tgz"));
    let headers = tar_headers(&tar);
    let mut dirs: Vec<String> = Vec::new();
    for (name, kind, _, magic) in &headers {
        assert_eq!(magic.as_slice(), b"ustar  \0", "{name}: a GNU header");
        let path = name.trim_end_matches('/');
        assert!(
            path == "var"
                || path.starts_with("var/lib/vmware/firstboot")
                || "var/lib/vmware/".starts_with(&format!("{path}/")),
            "{name}: outside var/lib/vmware/firstboot"
        );
        if let Some((parent, _)) = path.rsplit_once('/') {
            assert!(
                dirs.iter().any(|d| d == parent),
                "{name} before its directory {parent}/"
            );
        }
        if *kind == b'5' {
            dirs.push(path.to_string());
        }
    }
    let (ok, _, err) = run(
        "tar",
        &[
            "-xzf",
            bank.join("onetime.tgz").to_str().unwrap(),
            "-C",
            root.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    headers.into_iter().map(|(n, k, m, _)| (n, k, m)).collect()
}

/// Steps 2 and 4 (`firstboot.py -e`, `-l`).
fn apply_firstboot_json(root: &Path) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("var/lib/vmware/firstboot/firstboot.json")).unwrap(),
    )
    .unwrap();
    for (src, dst) in json["copyFiles"].as_object().unwrap() {
        let at = |p: &str| root.join(p.trim_start_matches('/'));
        std::fs::copy(at(src), at(dst.as_str().unwrap())).unwrap();
    }
    if let Some(hash) = json["password"].as_str() {
        let shadow = std::fs::read_to_string(root.join("etc/shadow")).unwrap();
        let replaced: String = shadow
            .lines()
            .map(|l| match l.strip_prefix("root:") {
                Some(rest) => format!("root:{hash}:{}\n", rest.split_once(':').unwrap().1),
                None => format!("{l}\n"),
            })
            .collect();
        std::fs::write(root.join("etc/shadow"), replaced).unwrap();
    }
    if let Some(k) = json["keyboard"].as_str() {
        std::fs::write(root.join("keyboard-layout"), k).unwrap();
    }
    if let Some(l) = json["licenseFile"].as_str() {
        std::fs::write(root.join("etc/vmware/vmware.lic"), l).unwrap();
    }
    let cfg_path = root.join(
        json["bootCfgPath"]
            .as_str()
            .unwrap()
            .trim_start_matches('/'),
    );
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, cfg.replace(" --- onetime.tgz", "")).unwrap();
    json
}

/// ESXi's tools as small scripts logging what they were asked: `esxcfg-info -b` gives a boot
/// volume, `vmkfstools -P` the boot disk, `vmkfstools -C` marks the partition formatted.
fn fake_tools(root: &Path) {
    let bin = root.join("fakebin");
    let tools = [
        ("esxcfg-info", "[ \"$1\" = -b ] && echo 5f1e2d3c-4b5a6978-1a2b-000c29aabbcc\n".to_string()),
        (
            "vmkfstools",
            format!(
                "log=\"$KSINSTALL_ESXI_ROOT/vmkfstools.log\"\necho \"$*\" >>\"$log\"\n\
case \"$1\" in\n-P) printf 'VFAT-0.04 (Raw Major Version: 0) file system\\nPartitions spanned (on \"disk\"):\\n\\t{BOOT_DISK}:5\\n' ;;\n\
-C) dev=\"$(eval echo \\${{$#}})\"; printf 'VMFS' | dd of=\"$dev\" bs=1 seek=1048576 conv=notrunc 2>/dev/null ;;\nesac\n"
            ),
        ),
        ("reboot", "touch \"$KSINSTALL_ESXI_ROOT/rebooted\"\n".to_string()),
        ("python", "exec python3 \"$@\"\n".to_string()),
    ];
    for (name, body) in tools {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The boot disk's partitions 7 and 8 as ESXi shows them: the first 4 MiB of each, from the
/// image (where sgdisk says they start).
fn disk_nodes(root: &Path, img: &Path) {
    let (_, table, _) = run("sgdisk", &["-p", img.to_str().unwrap()]);
    let partitions: Vec<(u32, u64)> = table
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
        })
        .filter(|(n, _)| *n >= 7)
        .collect();
    for (n, first_lba) in &partitions {
        let node = root.join(format!("vmfs/devices/disks/{BOOT_DISK}:{n}"));
        common::extract(img, first_lba * 512, first_lba * 512 + 4 * MIB, &node);
    }
}

/// Step 5 (`kickstart.py`): every executable file of the directory, in archive order, each
/// run by its shebang's interpreter from a shell that exits when it is done.
fn run_scripts(root: &Path, entries: &[(String, u8, u32)]) -> Vec<String> {
    let path = format!(
        "{}:{}",
        root.join("fakebin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = Vec::new();
    for (name, kind, mode) in entries {
        if *kind == b'5' || mode & 0o111 == 0 {
            continue;
        }
        let file = root.join(name);
        let first = std::fs::read_to_string(&file).unwrap();
        let shebang = first.lines().next().unwrap().to_string();
        let interp: Vec<String> = match shebang.as_str() {
            "#!/bin/sh -l" => vec!["sh".into()],
            "#!/usr/bin/python" => vec!["python3".into()],
            other => panic!("{name}: shebang {other:?} ESXi has no interpreter for"),
        };
        let out = Command::new("sh")
            .arg("-c")
            .arg("\"$@\"; rc=$?; exit $rc")
            .arg("kickstart.py")
            .args(&interp)
            .arg(&file)
            .current_dir(root)
            .env("PATH", &path)
            .env("KSINSTALL_ESXI_ROOT", root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran.push(name.rsplit('/').next().unwrap().to_string());
    }
    ran
}

/// Install `ks` onto a sparse image of `size`, copy bank 5 out with mcopy, and boot it in the
/// model. Returns the model's root, the bank copy and the names of the scripts that ran.
fn install_and_first_boot(s: &Setup, ks: &str, size: &str) -> (PathBuf, PathBuf, Vec<String>) {
    let img = s.path("disk.img");
    let out = s.install(
        &s.ks(ks),
        &["--disk", img.to_str().unwrap(), "--disk-size", size],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bank = s.path("bank");
    std::fs::create_dir_all(&bank).unwrap();
    mcopy_out(&img, P5, "::/", &bank);
    let root = esxi_root(s.path("").as_path(), &bank);
    let entries = lay_modules(&root, &bank);
    apply_firstboot_json(&root);
    fake_tools(&root);
    disk_nodes(&root, &img);
    let ran = run_scripts(&root, &entries);
    (root, bank, ran)
}

fn read(root: &Path, p: &str) -> String {
    std::fs::read_to_string(root.join(p)).unwrap_or_default()
}

fn shadow_entries(root: &Path) -> BTreeMap<String, String> {
    read(root, "etc/shadow")
        .lines()
        .map(|l| {
            let mut f = l.split(':');
            (f.next().unwrap().to_string(), f.next().unwrap().to_string())
        })
        .collect()
}

/// Root's hash verifies the kickstart's password with openssl, and every account ESXi ships
/// is still there.
fn assert_accounts(root: &Path) {
    let shadow = shadow_entries(root);
    assert_eq!(
        shadow.keys().cloned().collect::<Vec<_>>().len(),
        ESXI_ACCOUNTS.len(),
        "{shadow:?}"
    );
    for a in ESXI_ACCOUNTS {
        assert!(shadow.contains_key(a), "{a} was removed: {shadow:?}");
    }
    let hash = &shadow["root"];
    let salt = hash.split('$').nth(2).unwrap();
    let (ok, again, err) = run("openssl", &["passwd", "-6", "-salt", salt, PASSWORD]);
    assert!(ok, "{err}");
    assert_eq!(again.trim(), hash, "the hash does not verify the password");
    assert_eq!(shadow["nobody"], "*", "other accounts untouched");
}

#[test]
fn every_setting_of_a_full_kickstart_lands_at_first_boot() {
    let s = Setup::new("256M");
    let (root, _bank, ran) = install_and_first_boot(&s, &full_ks(), "200G");
    assert_accounts(&root);
    let conf = read(&root, "etc/vmware/esx.conf");
    for want in [
        "/adv/Misc/HostName = \"esx1\"",
        "/net/vswitch/child[0000]/name = \"vSwitch0\"",
        "/net/vswitch/child[0000]/portgroup/child[0000]/name = \"Management Network\"",
        "/net/vswitch/child[0000]/portgroup/child[0000]/vlanId = \"42\"",
        "/net/vswitch/child[0000]/portgroup/child[0001]/name = \"VM Network\"",
        "/net/vmkernelnic/child[0000]/ipv4address = \"10.1.2.3\"",
        "/net/vmkernelnic/child[0000]/ipv4netmask = \"255.255.255.0\"",
        "/net/vmkernelnic/child[0000]/dhcp = \"false\"",
        "/net/routes/kernel/gateway = \"10.1.2.1\"",
        "/adv/Net/ManagementIface = \"vmk0\"",
    ] {
        assert!(conf.contains(want), "{want} not in\n{conf}");
    }
    assert_eq!(
        read(&root, "etc/resolv.conf"),
        "search lab.example\nnameserver 10.1.2.2\nnameserver 10.1.2.4\n"
    );
    assert!(read(&root, "etc/hosts").contains("10.1.2.3\tesx1.lab.example esx1\n"));
    assert_eq!(read(&root, "keyboard-layout"), "German");
    assert_eq!(
        read(&root, "etc/vmware/vmware.lic"),
        "AB1C2-DE3F4-GH5I6-JK7L8-MN9P0"
    );
    let cfg = read(&root, "bootbank/boot.cfg");
    assert!(
        !cfg.contains("onetime.tgz"),
        "first boot takes it out:\n{cfg}"
    );
    assert!(cfg.contains("autoPartition=FALSE"), "{cfg}");
    // Our disk step first, then the kickstart's two scripts; both ran.
    assert_eq!(
        ran,
        [
            "000.firstboot_ksinstall",
            "001.firstboot_001",
            "002.firstboot_002"
        ]
    );
    assert_eq!(
        read(&root, "fb-busybox.out").trim(),
        format!("busybox ran as {}", uid())
    );
    assert_eq!(read(&root, "fb-python.out"), "python ran");
    // OSDATA as VMFS-L, the datastore as VMFS6 named datastore1, then one reboot.
    let log = read(&root, "vmkfstools.log");
    assert!(
        log.contains(&format!(
            "-C vmfsl {}",
            root.join(format!("vmfs/devices/disks/{BOOT_DISK}:7"))
                .display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "-C vmfs6 -S datastore1 {}",
            root.join(format!("vmfs/devices/disks/{BOOT_DISK}:8"))
                .display()
        )),
        "{log}"
    );
    wait_for(&root.join("rebooted"));
    // Run again (as if first boot were repeated): nothing is formatted twice.
    let before = log.matches("-C ").count();
    run_scripts(
        &root,
        &[(
            "var/lib/vmware/firstboot/000.firstboot_ksinstall".into(),
            b'0',
            0o755,
        )],
    );
    assert_eq!(read(&root, "vmkfstools.log").matches("-C ").count(), before);
    assert!(read(&root, "var/log/ksinstall-firstboot.log").contains("holds data already"));
}

/// The uid the test runs as (scripts run as the caller here; ESXi runs them as root).
fn uid() -> String {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The reboot comes when the script's parent is gone: wait for it, bounded.
fn wait_for(p: &Path) {
    for _ in 0..100 {
        if p.exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("{} never appeared", p.display());
}

#[test]
fn a_bare_kickstart_sets_only_the_password_and_keeps_esxi_defaults() {
    let s = Setup::new("256M");
    let (root, _bank, ran) = install_and_first_boot(&s, &bare_ks(), "40G");
    assert_accounts(&root);
    let conf = read(&root, "etc/vmware/esx.conf");
    assert!(
        conf.contains("/net/vmkernelnic/child[0000]/dhcp = \"true\""),
        "{conf}"
    );
    assert!(!conf.contains("vlanId = \"42\""), "{conf}");
    assert!(
        !root.join("keyboard-layout").exists(),
        "ESXi keeps its own keyboard"
    );
    assert!(
        !root.join("etc/vmware/vmware.lic").exists(),
        "evaluation mode"
    );
    assert_eq!(ran, ["000.firstboot_ksinstall"], "only our disk step");
    // 40 GB: OSDATA, no datastore.
    let log = read(&root, "vmkfstools.log");
    assert!(log.contains("-C vmfsl") && !log.contains("vmfs6"), "{log}");
    assert!(!read(&root, "bootbank/boot.cfg").contains("onetime.tgz"));
}

#[test]
fn secure_boot_is_read_and_first_boot_scripts_are_named_before_anything_is_written() {
    let s = Setup::new("64M");
    let ks = s.ks(&full_ks());
    let media = s.path("media");
    let img = s.path("disk.img");
    let disk = ["--disk", img.to_str().unwrap(), "--disk-size", "200G"];
    let dry = s.install_on(
        "secure-boot",
        media.as_os_str(),
        &ks,
        &[&disk[..], &["--dry-run"]].concat(),
    );
    let said = output_text(&dry);
    assert_eq!(dry.status.code(), Some(0), "{said}");
    for want in [
        "UEFI Secure Boot is on",
        "%firstboot at ",
        "ks.cfg:7",
        "ks.cfg:9",
        "ESX-OSData (VMFS-L) on",
        "VMFS6 datastore \"datastore1\"",
    ] {
        assert!(said.contains(want), "{want:?} not in:\n{said}");
    }
    // The NIC with link is the management uplink (first with link, weasel's rule).
    assert!(
        said.contains("vmnic1 (3c:fd:fe:a1:b2:c1), the first NIC with link"),
        "{said}"
    );
    assert!(!img.exists(), "a dry run creates no image");

    let strict = s.install_on(
        "secure-boot",
        media.as_os_str(),
        &ks,
        &[&disk[..], &["--strict"]].concat(),
    );
    let said = output_text(&strict);
    assert_eq!(strict.status.code(), Some(3), "{said}");
    assert!(
        said.contains("Secure Boot") && said.contains("--strict"),
        "{said}"
    );
    assert!(!img.exists(), "a refusal writes nothing");

    // Without first-boot scripts there is nothing Secure Boot stops... except our disk step:
    // a kickstart with no %firstboot still needs it for ESX-OSData.
    let bare = s.ks(&bare_ks());
    let strict_bare = s.install_on(
        "secure-boot",
        media.as_os_str(),
        &bare,
        &[&disk[..], &["--strict"]].concat(),
    );
    assert_eq!(
        strict_bare.status.code(),
        Some(3),
        "{}",
        output_text(&strict_bare)
    );
    assert!(output_text(&strict_bare).contains("ESX-OSData"));
}

#[test]
fn probe_shows_secure_boot_and_lockdown() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/secure-boot");
    let probe = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_ksinstall"))
            .args(["probe", "--format", format, "--sysroot"])
            .arg(&fixture)
            .output()
            .unwrap()
    };
    let text = output_text(&probe("text"));
    assert!(
        text.contains("Firmware: UEFI, Secure Boot on, lockdown integrity"),
        "{text}"
    );
    assert!(text.contains("no %firstboot script"), "{text}");
    let json: serde_json::Value = serde_json::from_slice(&probe("json").stdout).unwrap();
    assert_eq!(json["firmware"]["secure_boot"], true);
    assert_eq!(json["firmware"]["lockdown"], "integrity");
    assert_eq!(json["nics"][1]["vmnic"], "vmnic1");
    // A recorded host without sys/firmware says so rather than guessing BIOS.
    let plain = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plain");
    let out = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(["probe", "--sysroot"])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(output_text(&out).contains("Firmware: firmware not recorded"));
}

/// The `plain` fixture copied, with its second SSD (`sdb`, naa.5002538e40a1b2c4) a sparse file
/// of the size its sysfs says, so that the install may write it.
fn plain_with_second_disk(s: &Setup) -> (PathBuf, PathBuf) {
    let root = s.path("host");
    let (ok, _, err) = run(
        "cp",
        &[
            "-a",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/plain")
                .to_str()
                .unwrap(),
            root.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let sdb = root.join("dev/sdb");
    std::fs::File::create(&sdb)
        .unwrap()
        .set_len(1_953_525_168 * 512)
        .unwrap();
    (root, sdb)
}

fn install_on_host(s: &Setup, host: &Path, ks: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .arg("install")
        .arg("--ks")
        .arg(s.ks(ks))
        .arg("--media")
        .arg(s.path("media"))
        .arg("--sysroot")
        .arg(host)
        .args(["--cmdline", ""])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_part_datastore_is_laid_out_on_its_disk_and_formatted_at_first_boot() {
    let s = Setup::new("64M");
    let (host, sdb) = plain_with_second_disk(&s);
    let img = s.path("disk.img");
    let ks = format!(
        "{}part datastore2 --ondisk=naa.5002538e40a1b2c4\n",
        bare_ks()
    );
    let disk = ["--disk", img.to_str().unwrap(), "--disk-size", "40G"];
    let before = common::hash_range(&sdb, 0, 8 * MIB);
    let dry = install_on_host(&s, &host, &ks, &[&disk[..], &["--dry-run"]].concat());
    let said = output_text(&dry);
    assert_eq!(dry.status.code(), Some(0), "{said}");
    assert!(
        said.contains("Datastore disk naa.5002538e40a1b2c4"),
        "{said}"
    );
    assert!(
        said.contains("format VMFS6 datastore \"datastore2\" on naa.5002538e40a1b2c4 partition 1"),
        "{said}"
    );
    assert_eq!(
        common::hash_range(&sdb, 0, 8 * MIB),
        before,
        "a dry run writes nothing"
    );

    let out = install_on_host(&s, &host, &ks, &disk);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let (ok, v, _) = run("sgdisk", &["-v", sdb.to_str().unwrap()]);
    assert!(ok && v.contains("No problems found"), "{v}");
    let (_, info, _) = run("sgdisk", &["-i", "1", sdb.to_str().unwrap()]);
    assert!(
        info.contains("AA31E02A-400F-11DB-9590-000C2911D1B8"),
        "VMFS type:\n{info}"
    );
    let (_, table, _) = run("sgdisk", &["-p", sdb.to_str().unwrap()]);
    let guid = table
        .lines()
        .find_map(|l| l.strip_prefix("Disk identifier (GUID): "))
        .unwrap()
        .trim()
        .to_ascii_lowercase();
    // First boot finds that disk by its GUID and formats partition 1 as datastore2.
    let bank = s.path("bank");
    std::fs::create_dir_all(&bank).unwrap();
    mcopy_out(&img, P5, "::/", &bank);
    let root = esxi_root(&s.path(""), &bank);
    let entries = lay_modules(&root, &bank);
    let fmt = read(&root, "var/lib/vmware/firstboot/000.firstboot_ksinstall");
    assert!(fmt.contains(&format!("disk_by_guid {guid}")), "{fmt}");
    fake_tools(&root);
    disk_nodes(&root, &img);
    let node = root.join("vmfs/devices/disks/naa.5002538e40a1b2c4");
    common::extract(&sdb, 0, 64 * 1024, &node);
    let first: u64 = table
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "1").then(|| w.next()?.parse().ok())?
        })
        .unwrap();
    common::extract(
        &sdb,
        first * 512,
        first * 512 + 4 * MIB,
        &root.join("vmfs/devices/disks/naa.5002538e40a1b2c4:1"),
    );
    run_scripts(&root, &entries);
    let log = read(&root, "vmkfstools.log");
    assert!(
        log.contains(&format!("-C vmfs6 -S datastore2 {}:1", node.display())),
        "{log}"
    );
}

#[test]
fn part_refusals_keep_their_exit_codes_and_write_nothing() {
    let s = Setup::new("64M");
    let (host, sdb) = plain_with_second_disk(&s);
    // Something on the second disk: a GPT with one partition.
    let (ok, _, err) = run("sgdisk", &["-n", "1:2048:+100M", sdb.to_str().unwrap()]);
    assert!(ok, "{err}");
    let before = common::hash_range(&sdb, 0, 8 * MIB);
    let img = s.path("disk.img");
    let disk = ["--disk", img.to_str().unwrap(), "--disk-size", "40G"];
    let not_cleared = format!(
        "{}part datastore2 --ondisk=naa.5002538e40a1b2c4\n",
        bare_ks()
    );
    let out = install_on_host(&s, &host, &not_cleared, &disk);
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("clearpart"),
        "{}",
        output_text(&out)
    );
    assert!(!img.exists());
    assert_eq!(common::hash_range(&sdb, 0, 8 * MIB), before);
    // The install disk itself.
    let same = "vmaccepteula\nrootpw 'Plain-Secret-99x'\ninstall --disk=naa.5002538e40a1b2c4 --overwritevmfs\npart datastore2 --ondisk=naa.5002538e40a1b2c4\n";
    let out = install_on_host(&s, &host, same, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("install"),
        "{}",
        output_text(&out)
    );
    assert_eq!(common::hash_range(&sdb, 0, 8 * MIB), before);
    // Cleared by clearpart: laid out.
    let cleared = format!(
        "{}clearpart --drives=naa.5002538e40a1b2c4 --overwritevmfs\npart datastore2 --ondisk=naa.5002538e40a1b2c4\n",
        bare_ks()
    );
    let out = install_on_host(&s, &host, &cleared, &disk);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_ne!(common::hash_range(&sdb, 0, 8 * MIB), before);
}

fn inspect(disk: &Path, format: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(["inspect", "--format", format])
        .arg(disk)
        .output()
        .unwrap()
}

#[test]
fn inspect_reads_a_fresh_install_and_a_blank_disk_and_flags_what_esxi_would_refuse() {
    let s = Setup::new("64M");
    let blank = s.path("blank.img");
    std::fs::File::create(&blank)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let out = inspect(&blank, "text");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        output_text(&out).contains("No ESXi install on this disk."),
        "{}",
        output_text(&out)
    );
    let j: serde_json::Value = serde_json::from_slice(&inspect(&blank, "json").stdout).unwrap();
    assert!(j["content"]["esx"].is_null(), "{j}");

    let img = s.path("disk.img");
    let out = s.install(
        &s.ks(&full_ks()),
        &["--disk", img.to_str().unwrap(), "--disk-size", "40G"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let out = inspect(&img, "text");
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    for want in [
        "Bank 5 (boots): build 8.0.3",
        "first boot will apply (onetime.tgz):",
        "host name esx1",
        "network static 10.1.2.3/255.255.255.0 via 10.1.2.1",
        "VLAN 42",
        "DNS 10.1.2.2, 10.1.2.4",
        "keyboard German",
        "license from serialnum",
        "root password set: SHA-512 crypt ($6$)",
        "runs var/lib/vmware/firstboot/000.firstboot_ksinstall",
        "runs var/lib/vmware/firstboot/002.firstboot_002",
    ] {
        assert!(t.contains(want), "{want:?} not in\n{t}");
    }
    // The scheme, never the hash nor the password.
    assert_eq!(t.matches("$6$").count(), 1, "only the scheme's name:\n{t}");
    assert!(!t.contains(PASSWORD), "{t}");
    let json_out = inspect(&img, "json").stdout;
    let shown = String::from_utf8_lossy(&json_out).replace("($6$)", "");
    assert!(!shown.contains("$6$"), "inspect prints no hash:\n{shown}");
    let j: serde_json::Value = serde_json::from_slice(&json_out).unwrap();
    assert_eq!(j["first_boot_problems"], serde_json::json!([]));
    let bank5 = &j["content"]["esx"]["banks"][0];
    assert_eq!(bank5["first_boot"]["pending"], true, "{bank5}");

    // An onetime.tgz of files only (what ESXi's boot stopped on): flagged, exit 5.
    let stage = s.path("stage");
    std::fs::create_dir_all(stage.join("var/lib/vmware/firstboot")).unwrap();
    std::fs::write(stage.join("var/lib/vmware/firstboot/firstboot.json"), "{}").unwrap();
    let bad = s.path("onetime.tgz");
    let (ok, _, err) = run(
        "tar",
        &[
            "-czf",
            bad.to_str().unwrap(),
            "-C",
            stage.to_str().unwrap(),
            "--no-recursion",
            "var/lib/vmware/firstboot/firstboot.json",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = run(
        "mcopy",
        &[
            "-o",
            "-i",
            &format!("{}@@{P5}", img.display()),
            bad.to_str().unwrap(),
            "::/onetime.tgz",
        ],
    );
    assert!(ok, "{err}");
    let out = inspect(&img, "text");
    assert_eq!(out.status.code(), Some(5), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("Missing directory"),
        "{}",
        output_text(&out)
    );
}
