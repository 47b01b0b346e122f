//! `ksinstall interactive` driven as a person would: the real binary in a real terminal (tmux,
//! 80x24), keys sent with `send-keys`, the screen read with `capture-pane`. What it installs is
//! judged with the same real tools as the scripted install (`sgdisk`, `fsck.fat`, `mtools`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::setup::Setup;
use common::{hash_image, mcopy_out, run, sha256_file};
use ksinstall::media::Role;
use testkit::synth;

const PASSWORD: &str = "Console-Pass-42x";
const BF3_SDA: &str = "naa.600062b212345678290a3b4c5d6e7f80";
const BF3_SDB: &str = "naa.600a098038303053453f463045727a4a";
/// The MegaRAID volume of tests/fixtures/bluefield3-sibling: the same model as BF3_SDA, but sdb.
const SIBLING_SDB: &str = "naa.600062b2abcdef01290a3b4c5d6e7f81";
const P1: u64 = 64 * 512;
const P5: u64 = 208_896 * 512;

/// A recorded host (tests/fixtures/NAME) whose disks are sparse images of their sysfs sizes,
/// its BlueField (if it has one) answering behind rshim's device files, and a small synthetic
/// medium.
fn host_of(fixture: &str) -> Setup {
    Setup::with()
        .host(fixture)
        .disks_from_sysfs()
        .live_bluefield()
        .media("256M")
        .build()
}

/// The console on the shared set-up: the host's disk images and the console run on it.
trait ConsoleHost {
    fn dev(&self, name: &str) -> PathBuf;
    fn console(&self, extra: &[&str]) -> Console;
    fn args(&self, extra: &[&str]) -> Vec<String>;
}

impl ConsoleHost for Setup {
    fn dev(&self, name: &str) -> PathBuf {
        self.path(&format!("root/dev/{name}"))
    }
    fn console(&self, extra: &[&str]) -> Console {
        Console::start(self.dir.path(), &self.args(extra))
    }
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "interactive".to_string(),
            "--sysroot".into(),
            self.path("root").display().to_string(),
            "--media".into(),
            self.path("media").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

/// One tmux server on its own socket, running the binary in an 80x24 pane; killed on drop, also
/// when the test fails.
struct Console {
    socket: String,
    exit_file: PathBuf,
    stderr_file: PathBuf,
    /// tmux leaves its socket file behind after kill-server.
    socket_path: Option<PathBuf>,
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Console {
    fn start(dir: &Path, args: &[String]) -> Console {
        Console::launch(dir, args, "", (80, 24))
    }

    /// `prelude` runs in the pane's shell first (e.g. `stty`); `size` is the pane's.
    fn launch(dir: &Path, args: &[String], prelude: &str, size: (u16, u16)) -> Console {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let socket = format!(
            "ksinstall-console-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let exit_file = dir.join(format!("{socket}.exit"));
        let stderr_file = dir.join(format!("{socket}.stderr"));
        let mut cmd = sh_quote(env!("CARGO_BIN_EXE_ksinstall"));
        for a in args {
            cmd.push(' ');
            cmd.push_str(&sh_quote(a));
        }
        // The exit code goes to a file; the pane stays open so the last screen can be read.
        let script = format!(
            "{prelude}{cmd} 2>{}; echo $? >{}.tmp; mv {}.tmp {}; exec sleep 3600",
            sh_quote(&stderr_file.display().to_string()),
            sh_quote(&exit_file.display().to_string()),
            sh_quote(&exit_file.display().to_string()),
            sh_quote(&exit_file.display().to_string())
        );
        let mut c = Console {
            socket,
            exit_file,
            stderr_file,
            socket_path: None,
        };
        c.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            &size.0.to_string(),
            "-y",
            &size.1.to_string(),
            "-s",
            "t",
            &script,
        ]);
        c.socket_path = Some(PathBuf::from(
            c.tmux(&["display-message", "-p", "#{socket_path}"]).trim(),
        ));
        c
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new(common::tool("tmux"))
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    /// Named keys (`Enter`, `Escape`, `F11`, `Down`, ...).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Text typed as it is.
    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "t", "-l", text]);
    }

    /// Waits until the screen shows all of `texts`; returns that screen. Fails with the last
    /// screen after a minute.
    fn wait_for(&self, texts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.screen();
            if texts.iter().all(|t| s.contains(t)) {
                // What the VT font and a serial terminal show alike.
                assert!(s.is_ascii(), "a character outside ASCII:\n{s}");
                assert!(
                    !s.contains(PASSWORD),
                    "the plain password is on the screen:\n{s}"
                );
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "waited a minute for {texts:?}; the screen shows:\n{s}\nstderr: {}",
                    std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends keys, then waits for what they lead to: a key is only sent once the screen it is
    /// meant for is shown.
    fn press(&self, keys: &[&str], then: &[&str]) -> String {
        self.keys(keys);
        self.wait_for(then)
    }

    /// The exit code, once the binary has ended.
    fn exit_code(&self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.exit_file.exists() {
            assert!(
                Instant::now() < deadline,
                "ksinstall did not end; the screen shows:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::read_to_string(&self.exit_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    // Screen by screen, the way through.

    fn accept_eula(&self) {
        self.wait_for(&["Welcome to the installation of VMware ESXi 8.0.3"]);
        self.press(&["Enter"], &["End User License Agreement"]);
        self.press(&["F11"], &["Select a disk to install on"]);
    }

    /// From the disk list: the `n`th disk (0-based), expecting no overwrite question.
    fn choose_blank_disk(&self, n: usize) {
        for _ in 0..n {
            self.keys(&["Down"]);
        }
        self.press(&["Enter"], &["Keyboard layout", "> US Default"]);
    }

    fn choose_keyboard_german(&self) {
        self.press(&["g"], &["> German"]);
        self.press(&["Enter"], &["Root password:"]);
    }

    fn set_password(&self) {
        self.type_text(PASSWORD);
        self.wait_for(&["Root password:    ****************_"]);
        self.press(&["Enter"], &["Confirm password: _"]);
        self.type_text(PASSWORD);
        self.wait_for(&["Confirm password: ****************_"]);
        self.press(&["Enter"], &["Configuration   : < DHCP >"]);
    }

    fn static_network(&self) {
        self.press(&["Right"], &["< Static >"]);
        for (value, shown) in [
            ("10.1.2.3", "IPv4 address    : 10.1.2.3"),
            ("255.255.255.0", "Subnet mask     : 255.255.255.0"),
            ("10.1.2.1", "Default gateway : 10.1.2.1"),
            ("10.1.2.2", "DNS servers     : 10.1.2.2"),
            ("esx1.example", "Host name       : esx1.example"),
        ] {
            self.keys(&["Tab"]);
            self.type_text(value);
            self.wait_for(&[shown]);
        }
        self.press(
            &["Enter"],
            &["Data Processing Unit (DPU)", "NVIDIA BlueField-3"],
        );
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
        if let Some(p) = &self.socket_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Partition table lines of `sgdisk -p` (number, start, end, size, code, name), without the
/// disk GUID that differs between any two installs.
fn table(img: &Path) -> Vec<String> {
    let (ok, v, err) = run("sgdisk", &["-v", img.to_str().unwrap()]);
    assert!(ok && v.contains("No problems found"), "{v}{err}");
    let (ok, p, err) = run("sgdisk", &["-p", img.to_str().unwrap()]);
    assert!(ok, "{err}");
    p.lines()
        .skip_while(|l| !l.starts_with("Number"))
        .skip(1)
        .map(str::to_string)
        .collect()
}

fn mtype(img: &Path, offset: u64, file: &str) -> String {
    let (ok, out, err) = run(
        "mtype",
        &["-i", &format!("{}@@{offset}", img.display()), file],
    );
    assert!(ok, "mtype {file}: {err}");
    out
}

/// The boot bank's files, copied out with mcopy, hash to the media's manifest; returns the
/// bank's boot.cfg.
fn check_bootbank(host: &Setup, img: &Path, to: &str) -> String {
    let back = host.path(to);
    std::fs::create_dir(&back).unwrap();
    mcopy_out(img, P5, "::/", &back);
    let m = host.manifest();
    let modules: Vec<_> = m
        .components
        .iter()
        .filter(|c| c.role == Role::Kernel || c.role == Role::Module)
        .collect();
    assert_eq!(modules.len(), 108, "kernel, 106 VIB modules, imgdb.tgz");
    for c in modules {
        assert_eq!(sha256_file(&back.join(&c.path)), c.sha256, "{}", c.path);
    }
    for (n, first, last) in [
        (1u32, 64u64, 204_863u64),
        (5, 208_896, 8_595_455),
        (6, 8_597_504, 16_984_063),
    ] {
        let part = host.path(&format!("{to}-p{n}.img"));
        common::extract(img, first * 512, (last + 1) * 512, &part);
        let (ok, out, err) = run("fsck.fat", &["-n", part.to_str().unwrap()]);
        assert!(ok, "fsck.fat partition {n}: {out}{err}");
        std::fs::remove_file(&part).unwrap();
    }
    let efi = mtype(img, P1, "::/EFI/BOOT/BOOTX64.EFI");
    assert!(!efi.is_empty(), "no bootloader on the ESP");
    mtype(img, P5, "::/boot.cfg")
}

/// The boot.cfg lines that are the same for any install of the same media and answers.
fn stable_boot_cfg(cfg: &str) -> String {
    cfg.lines()
        .filter(|l| !l.starts_with("updated="))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines of a saved kickstart that say something: neither comments nor blank.
fn settings(ks: &str) -> Vec<&str> {
    ks.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect()
}

/// The comment lines right above the first line starting with `prefix`, joined.
fn comment_before(ks: &str, prefix: &str) -> String {
    let lines: Vec<&str> = ks.lines().collect();
    let Some(at) = lines.iter().position(|l| l.starts_with(prefix)) else {
        return String::new();
    };
    let mut comment: Vec<&str> = lines[..at]
        .iter()
        .rev()
        .take_while(|l| l.starts_with('#'))
        .copied()
        .collect();
    comment.reverse();
    comment.join("\n")
}

/// `ksinstall install --ks SAVED --dry-run` on another host: (exit code, stdout, stderr).
fn replay_dry_run(saved: &Path, on: &Setup) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .arg("install")
        .arg("--ks")
        .arg(saved)
        .arg("--media")
        .arg(on.path("media"))
        .arg("--sysroot")
        .arg(on.path("root"))
        .args(["--dry-run", "--progress", "none"])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_console_install_on_a_bluefield3_host_checks_out_and_its_saved_kickstart_repeats_it() {
    let host = host_of("bluefield3");
    let saved = host.path("saved-ks.cfg");
    let sda = host.dev("sda");
    let sdb_before = hash_image(&host.dev("sdb"));
    let c = host.console(&["--save-ks", saved.to_str().unwrap()]);
    c.accept_eula();
    let disks = c.wait_for(&["sda", "sdb", "MR9560-16i", "LUN C-Mode", "893.8 GiB"]);
    assert!(disks.contains("blank"), "{disks}");
    c.choose_blank_disk(0);
    c.choose_keyboard_german();
    c.set_password();
    c.static_network();
    let dpu = c.wait_for(&["slot 4 (0000:ca:00)", "This install:"]);
    assert!(dpu.contains("Supported by vSphere 8: yes"), "{dpu}");
    let confirm = c.press(&["Enter"], &["Confirm install", "F11: install"]);
    for want in [
        "on sda:",
        BF3_SDA,
        "ERASED: nothing: sda is blank now",
        "Keyboard: German",
        "static 10.1.2.3/255.255.255.0 via 10.1.2.1",
        "host name esx1.example, DNS 10.1.2.2",
        "DPU: NVIDIA BlueField-3 in slot 4",
        "First boot: formats ESX-OSData, datastore \"datastore1\"; restarts once",
    ] {
        assert!(confirm.contains(want), "{want:?} not in\n{confirm}");
    }
    assert!(!saved.exists(), "nothing is saved or written before F11");
    assert!(
        !common::image_contains(&sda, b"EFI PART"),
        "nothing is written before F11"
    );
    c.press(&["F11"], &["Installing"]);
    let done = c.wait_for(&["Installation complete", "Remove the installation media"]);
    assert!(done.contains("Reboot the host"), "{done}");
    c.keys(&["Enter"]);
    assert_eq!(c.exit_code(), 0, "{}", c.stderr());
    assert!(!c.stderr().contains(PASSWORD));

    // Checked like the scripted install.
    let numbers: Vec<String> = table(&sda)
        .iter()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert_eq!(
        numbers,
        ["1", "5", "6", "7", "8"],
        "960 GB gets a datastore"
    );
    let cfg = check_bootbank(&host, &sda, "back");
    let m = host.manifest();
    assert!(cfg.contains(&format!("build={}", m.build)), "{cfg}");
    assert!(cfg.contains("bootstate=0"), "{cfg}");
    // What first boot applies: onetime.tgz, in ESXi's form (docs/FIRSTBOOT.md); no state.tgz.
    assert!(!host.path("back/state.tgz").exists());
    let file = |member: &str| {
        let o = Command::new("tar")
            .arg("-xzOf")
            .arg(host.path("back/onetime.tgz"))
            .arg(format!("var/lib/vmware/firstboot/{member}"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{member}");
        String::from_utf8(o.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&file("firstboot.json")).unwrap();
    let hash = json["password"].as_str().unwrap().to_string();
    assert!(hash.starts_with("$6$"), "{json}");
    assert_eq!(json["keyboard"], "German");
    let conf = file("esx.conf");
    for want in [
        "/adv/Misc/HostName = \"esx1\"",
        "ipv4address = \"10.1.2.3\"",
    ] {
        assert!(conf.contains(want), "{want} not in\n{conf}");
    }
    assert!(!common::image_contains(&sda, PASSWORD.as_bytes()));
    assert_eq!(
        hash_image(&host.dev("sdb")),
        sdb_before,
        "only the chosen disk is written"
    );

    // The saved kickstart: valid, password hashed, and it repeats the install.
    let ks = std::fs::read_to_string(&saved).unwrap();
    assert!(!ks.contains(PASSWORD), "{ks}");
    assert!(
        ks.contains(&format!("rootpw --iscrypted {hash}")),
        "the saved hash is the installed one:\n{ks}"
    );
    // For the fleet: the disk by its model, the static address kept and marked as this host's.
    let settings = settings(&ks);
    assert!(settings.contains(&"install --firstdisk=MR9560-16i"), "{ks}");
    assert!(!settings.iter().any(|l| l.contains(BF3_SDA)), "{ks}");
    let network = settings.iter().find(|l| l.starts_with("network ")).unwrap();
    assert!(
        network.contains("--bootproto=static")
            && network.contains("--ip=10.1.2.3")
            && network.contains("--hostname=esx1.example"),
        "{ks}"
    );
    assert!(
        comment_before(&ks, "network ").contains("per-host"),
        "the address is marked as this host's:\n{ks}"
    );
    let validate = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(["validate", "--strict"])
        .arg(&saved)
        .output()
        .unwrap();
    assert_eq!(
        validate.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
    let fleet = host_of("bluefield3");
    let install = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .arg("install")
        .arg("--ks")
        .arg(&saved)
        .arg("--media")
        .arg(fleet.path("media"))
        .arg("--sysroot")
        .arg(fleet.path("root"))
        .args(["--progress", "none"])
        .output()
        .unwrap();
    assert_eq!(
        install.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );
    let fleet_sda = fleet.dev("sda");
    // `sgdisk -p` rows: number, first and last sector, size, type code, name.
    assert_eq!(table(&fleet_sda), table(&sda), "the same partition table");
    let fleet_cfg = check_bootbank(&fleet, &fleet_sda, "fleet-back");
    assert_eq!(stable_boot_cfg(&fleet_cfg), stable_boot_cfg(&cfg));
    let listing = |dir: &Path| {
        let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    sha256_file(&e.path()),
                )
            })
            .filter(|(n, _)| n != "ksinstall.json" && n != "boot.cfg")
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        listing(&fleet.path("fleet-back")),
        listing(&host.path("back")),
        "the same boot bank, file by file"
    );
}

#[test]
fn the_saved_kickstart_chooses_the_disk_by_its_model_on_another_host_of_the_fleet() {
    let host = host_of("bluefield3");
    let saved = host.path("saved-ks.cfg");
    // sda holds an older ESXi with a datastore: the user confirms the overwrite.
    old_layout_with_datastore(&host.dev("sda"), b"old datastore");
    let c = host.console(&["--save-ks", saved.to_str().unwrap()]);
    c.accept_eula();
    c.wait_for(&["MR9560-16i", "VMFS (p8)"]);
    c.press(
        &["Enter"],
        &["The disk holds data", "> Overwrite: erase the whole disk"],
    );
    c.press(&["Enter"], &["Keyboard layout"]);
    c.press(&["Enter"], &["Root password:"]);
    c.set_password();
    // DHCP, as the network screen starts.
    c.press(&["Enter"], &["Data Processing Unit (DPU)"]);
    let confirm = c.press(&["Enter"], &["Confirm install", "F11: install"]);
    assert!(
        confirm.contains("on sda:") && confirm.contains(BF3_SDA),
        "{confirm}"
    );
    c.press(&["F11"], &["Installation complete"]);
    c.keys(&["Enter"]);
    assert_eq!(c.exit_code(), 0, "{}", c.stderr());

    let ks = std::fs::read_to_string(&saved).unwrap();
    assert!(!ks.contains(PASSWORD), "{ks}");
    let settings = settings(&ks);
    // The disk by a rule (its model), not by this host's name; the overwrite the user confirmed.
    assert!(
        settings.contains(&"install --firstdisk=MR9560-16i --overwritevmfs"),
        "{ks}"
    );
    assert!(
        !settings
            .iter()
            .any(|l| l.contains("--disk=") || l.contains(BF3_SDA)),
        "{ks}"
    );
    let why = comment_before(&ks, "install ");
    assert!(why.contains("MR9560-16i") && why.contains("model"), "{ks}");
    // DHCP, and nothing of this host's: no address, no host name.
    assert!(
        settings.contains(&"network --bootproto=dhcp --addvmportgroup=1"),
        "{ks}"
    );
    assert!(!ks.contains("--hostname") && !ks.contains("--ip="), "{ks}");
    assert!(
        settings
            .iter()
            .any(|l| l.starts_with("rootpw --iscrypted $6$")),
        "{ks}"
    );

    // Another host of the fleet: its disks are found in another order, with other names. The
    // rule finds its MegaRAID volume, sdb there.
    let sibling = host_of("bluefield3-sibling");
    let before: Vec<String> = ["sda", "sdb", "sdc"]
        .iter()
        .map(|d| hash_image(&sibling.dev(d)))
        .collect();
    let (code, plan, err) = replay_dry_run(&saved, &sibling);
    assert_eq!(code, Some(0), "{plan}{err}");
    let target = plan
        .lines()
        .find(|l| l.starts_with("Target: "))
        .unwrap_or_default();
    assert!(
        target.starts_with(&format!("Target: {SIBLING_SDB} ("))
            && target.contains("/root/dev/sdb)")
            && target.contains("--firstdisk=mr9560-16i"),
        "{plan}"
    );
    let after: Vec<String> = ["sda", "sdb", "sdc"]
        .iter()
        .map(|d| hash_image(&sibling.dev(d)))
        .collect();
    assert_eq!(after, before, "a dry run writes nothing");
}

#[test]
fn save_ks_exact_keeps_this_hosts_disk_name_and_address() {
    let host = host_of("bluefield3");
    let saved = host.path("exact-ks.cfg");
    let c = host.console(&["--save-ks", saved.to_str().unwrap(), "--save-ks-exact"]);
    c.accept_eula();
    c.choose_blank_disk(0);
    c.choose_keyboard_german();
    c.set_password();
    c.static_network();
    c.press(&["Enter"], &["Confirm install", "F11: install"]);
    c.press(&["F11"], &["Installation complete"]);
    c.keys(&["Enter"]);
    assert_eq!(c.exit_code(), 0, "{}", c.stderr());

    let ks = std::fs::read_to_string(&saved).unwrap();
    assert!(!ks.contains(PASSWORD), "{ks}");
    let settings = settings(&ks);
    assert!(
        settings.contains(&format!("install --disk={BF3_SDA}").as_str()),
        "{ks}"
    );
    assert!(!ks.contains("--firstdisk"), "{ks}");
    assert!(
        settings.contains(
            &"network --bootproto=static --ip=10.1.2.3 --netmask=255.255.255.0 \
              --gateway=10.1.2.1 --nameserver=10.1.2.2 --hostname=esx1.example --addvmportgroup=1"
        ),
        "{ks}"
    );
    // Replayed on this host (a copy of it) it picks the same disk ...
    let (code, plan, err) = replay_dry_run(&saved, &host_of("bluefield3"));
    assert_eq!(code, Some(0), "{plan}{err}");
    assert!(
        plan.contains(&format!("Target: {BF3_SDA} (")) && plan.contains("/root/dev/sda)"),
        "{plan}"
    );
    // ... and on another host of the fleet it finds no disk of that name: nothing is written.
    let (code, plan, err) = replay_dry_run(&saved, &host_of("bluefield3-sibling"));
    assert_eq!(code, Some(3), "{plan}{err}");
    assert!(
        err.contains(&format!("no disk is named \"{BF3_SDA}\"")),
        "{err}"
    );
}

#[test]
fn a_weak_password_is_refused_on_its_screen() {
    let host = host_of("bluefield3");
    let sda_before = hash_image(&host.dev("sda"));
    let c = host.console(&[]);
    c.accept_eula();
    c.choose_blank_disk(0);
    c.press(&["Enter"], &["Root password:"]);
    c.type_text("password");
    let s = c.press(
        &["Enter"],
        &["Error: the root password does not meet ESXi's default password policy"],
    );
    assert!(s.contains("Root password:    ********_"), "{s}");
    assert!(s.contains("1 character class (lowercase)"), "{s}");
    assert!(
        !s.contains("Configuration"),
        "it stays on the password screen"
    );

    // A strong one typed differently twice is refused next to the confirmation.
    for _ in 0.."password".len() {
        c.keys(&["BSpace"]);
    }
    c.type_text(PASSWORD);
    c.press(&["Enter"], &["Confirm password: _"]);
    c.type_text("Console-Pass-43x");
    let s = c.press(&["Enter"], &["Error: the two passwords differ"]);
    let lines: Vec<&str> = s.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("Confirm password:"))
        .unwrap();
    assert!(
        lines[at + 1].contains("Error: the two passwords differ"),
        "the error is under its field:\n{s}"
    );

    // Leaving writes nothing.
    c.press(&["Escape"], &["Keyboard layout"]);
    c.press(&["Escape"], &["Select a disk to install on"]);
    c.press(&["Escape"], &["End User License Agreement"]);
    c.press(&["Escape"], &["Welcome to the installation"]);
    c.keys(&["Escape"]);
    assert_eq!(c.exit_code(), 1);
    assert!(c.stderr().contains("nothing was written"), "{}", c.stderr());
    assert_eq!(hash_image(&host.dev("sda")), sda_before);
}

/// ESXi 7's layout on `img` with the real sgdisk: partitions 1, 5, 6, 7 (VMFS-L) and a VMFS
/// datastore in 8, holding `marker` at its first sector.
fn old_layout_with_datastore(img: &Path, marker: &[u8]) {
    let (ok, _, err) = run(
        "sgdisk",
        &[
            "-n",
            "1:64:204863",
            "-t",
            "1:EF00",
            "-n",
            "5:208896:8595455",
            "-t",
            "5:0700",
            "-n",
            "6:8597504:16984063",
            "-t",
            "6:0700",
            "-n",
            "7:16986112:268435455",
            "-t",
            "7:4EB2EA39-7855-4790-A79E-FAE495E21F8D",
            "-n",
            "8:268437504:0",
            "-t",
            "8:FB00",
            "-c",
            "8:datastore1",
            img.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    common::poke(img, 268_437_504 * 512, marker);
}

#[test]
fn a_vmfs_datastore_the_user_preserves_survives_the_install() {
    let host = host_of("bluefield3");
    let sda = host.dev("sda");
    let marker = b"VMFS datastore contents: virtual machines live here";
    old_layout_with_datastore(&sda, marker);
    let before = table(&sda);
    let p8_before = before
        .iter()
        .find(|l| l.trim_start().starts_with("8 "))
        .cloned()
        .unwrap();

    let c = host.console(&[]);
    c.accept_eula();
    let s = c.wait_for(&["VMFS (p8)"]);
    assert!(s.contains("Warning: this disk holds data"), "{s}");
    let s = c.press(
        &["Enter"],
        &["The disk holds data", "Go back: choose another disk"],
    );
    for want in [
        "VMFS datastore may hold virtual machines",
        "> Overwrite: erase the whole disk",
        "Preserve: keep the VMFS datastore (partition 8)",
    ] {
        assert!(s.contains(want), "{want:?} not in\n{s}");
    }
    c.press(&["Down"], &["> Preserve: keep the VMFS datastore"]);
    c.press(&["Enter"], &["Keyboard layout"]);
    c.press(&["Enter"], &["Root password:"]);
    c.set_password();
    c.press(&["Enter"], &["Data Processing Unit (DPU)"]);
    let s = c.press(&["Enter"], &["Confirm install", "F11: install"]);
    for want in [
        "ERASED: everything on sda now",
        "partition 7",
        "KEPT: partition 8 (VMFS datastore), untouched",
    ] {
        assert!(s.contains(want), "{want:?} not in\n{s}");
    }
    assert!(
        !s.contains("partition 8 (datastore1)"),
        "8 is not erased:\n{s}"
    );
    c.press(&["F11"], &["Installation complete"]);
    c.keys(&["Enter"]);
    assert_eq!(c.exit_code(), 0, "{}", c.stderr());

    let after = table(&sda);
    let p8_after = after
        .iter()
        .find(|l| l.trim_start().starts_with("8 "))
        .cloned()
        .unwrap();
    assert_eq!(
        p8_after, p8_before,
        "partition 8 keeps its place, type and name"
    );
    assert!(p8_after.contains("FB00") && p8_after.contains("datastore1"));
    let numbers: Vec<&str> = after
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(numbers, ["1", "5", "6", "7", "8"]);
    let mut f = std::fs::File::open(&sda).unwrap();
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(268_437_504 * 512)).unwrap();
    let mut back = vec![0u8; marker.len()];
    f.read_exact(&mut back).unwrap();
    assert_eq!(back, marker, "the datastore's contents are untouched");
    check_bootbank(&host, &sda, "back");
}

#[test]
fn going_back_from_the_confirmation_changes_the_plan() {
    let host = host_of("bluefield3");
    let sda_before = hash_image(&host.dev("sda"));
    let c = host.console(&[]);
    c.accept_eula();
    c.choose_blank_disk(0);
    c.choose_keyboard_german();
    c.set_password();
    // A static address with a gateway off its subnet: the error is under the gateway.
    c.press(&["Right"], &["< Static >"]);
    c.keys(&["Tab"]);
    c.type_text("10.1.2.3");
    c.keys(&["Tab", "Tab"]);
    c.type_text("192.168.1.1");
    let s = c.press(
        &["Enter"],
        &["Error: --gateway 192.168.1.1 is not on the subnet"],
    );
    let lines: Vec<&str> = s.lines().collect();
    let under = |field: &str| {
        let at = lines.iter().position(|l| l.contains(field)).unwrap();
        lines[at + 1]
    };
    assert!(
        under("Default gateway : 192.168.1.1").contains("Error: --gateway"),
        "{s}"
    );
    assert!(
        under("Subnet mask     :").contains("Note: network has no --netmask"),
        "{s}"
    );
    // The cursor is on the field in error; up to the configuration and back to DHCP.
    c.keys(&["Up", "Up", "Up"]);
    c.press(&["Left"], &["< DHCP >"]);
    c.press(&["Enter"], &["Data Processing Unit (DPU)"]);
    let s = c.press(&["Enter"], &["Confirm install"]);
    assert!(s.contains("on sda:") && s.contains(BF3_SDA), "{s}");

    // Back to the disk list, every screen on the way shown, and the other disk chosen.
    c.press(&["Escape"], &["Data Processing Unit (DPU)"]);
    c.press(&["Escape"], &["Configuration   : < DHCP >"]);
    c.press(&["Escape"], &["A password is already set"]);
    c.press(&["Escape"], &["Keyboard layout", "> German"]);
    c.press(&["Escape"], &["Select a disk to install on"]);
    c.press(
        &["Down"],
        &["Name:     naa.600a098038303053453f463045727a4a"],
    );
    c.press(&["Enter"], &["Keyboard layout", "> German"]);
    c.press(&["Enter"], &["A password is already set"]);
    c.press(&["Enter"], &["Configuration   : < DHCP >"]);
    c.press(&["Enter"], &["Data Processing Unit (DPU)"]);
    let s = c.press(&["Enter"], &["Confirm install", "F11: install"]);
    assert!(s.contains("on sdb:") && s.contains(BF3_SDB), "{s}");
    assert!(s.contains("465.7 GiB") && !s.contains(BF3_SDA), "{s}");
    assert!(
        s.contains("Keyboard: German") && s.contains("Network:  DHCP"),
        "{s}"
    );
    c.press(&["F11"], &["Installation complete", "installed on sdb"]);
    c.keys(&["Enter"]);
    assert_eq!(c.exit_code(), 0, "{}", c.stderr());
    assert_eq!(table(&host.dev("sdb")).len(), 5, "sdb holds the install");
    assert_eq!(hash_image(&host.dev("sda")), sda_before, "sda is untouched");
}

#[test]
fn a_card_vsphere_cannot_use_is_explained_and_the_host_installs_without_dse() {
    let host = host_of("bluefield1");
    let sda_before = hash_image(&host.dev("sda"));
    let c = host.console(&[]);
    c.accept_eula();
    c.choose_blank_disk(0);
    c.press(&["Enter"], &["Root password:"]);
    c.set_password();
    let s = c.press(
        &["Enter"],
        &["Data Processing Unit (DPU)", "This install leaves it alone"],
    );
    for want in [
        "slot 1 (0000:af:00)",
        "Supported by vSphere 8: no",
        "without DSE",
        "a model vSphere 8 does not support (vSphere 8 supports BlueField-2",
    ] {
        assert!(s.contains(want), "{want:?} not in\n{s}");
    }
    // The card is no reason to stop: the install may go ahead, on the host alone.
    let s = c.press(&["Enter"], &["Confirm install", "F11: install"]);
    assert!(!s.contains("The install cannot go ahead"), "{s}");
    c.press(&["Escape"], &["Data Processing Unit (DPU)"]);
    c.keys(&["C-c"]);
    assert_eq!(c.exit_code(), 1);
    assert_eq!(
        hash_image(&host.dev("sda")),
        sda_before,
        "nothing is written before F11"
    );
}

#[test]
fn a_serial_line_that_reports_no_size_gets_80x24() {
    let host = host_of("bluefield3");
    // A serial console: a dumb terminal type, and no window size from the kernel.
    let c = Console::launch(
        host.dir.path(),
        &host.args(&[]),
        "stty rows 0 cols 0; TERM=vt100 ",
        (100, 30),
    );
    let s = c.wait_for(&["Welcome to the installation", "Enter: continue"]);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines[1].len(), 80, "the box is 80 wide:\n{s}");
    assert!(
        lines[1].starts_with("+ Welcome") && lines[1].ends_with('+'),
        "{s}"
    );
    assert!(
        lines[23].starts_with(" Enter: continue"),
        "the help line is row 24:\n{s}"
    );
    assert!(lines.iter().skip(24).all(|l| l.trim().is_empty()), "{s}");
    c.press(&["Enter"], &["End User License Agreement"]);
    c.keys(&["C-c"]);
    assert_eq!(c.exit_code(), 1);
}

#[test]
fn bad_media_is_found_before_the_disk_is_touched_and_the_result_says_so() {
    let host = host_of("bluefield3");
    let module = host.path("media/VIM.V00");
    let mut bytes = std::fs::read(&module).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&module, bytes).unwrap();
    let sda_before = hash_image(&host.dev("sda"));
    let c = host.console(&[]);
    c.accept_eula();
    c.choose_blank_disk(0);
    c.press(&["Enter"], &["Root password:"]);
    c.set_password();
    c.press(&["Enter"], &["Data Processing Unit (DPU)"]);
    c.press(&["Enter"], &["Confirm install", "F11: install"]);
    let s = c.press(
        &["F11"],
        &["Installation failed", "The install failed in step media"],
    );
    assert!(s.contains("vim.v00"), "{s}");
    assert!(s.contains("Exit code 4"), "{s}");
    assert!(
        s.contains("Nothing was written: the disk is as it was."),
        "{s}"
    );
    c.keys(&["Enter"]);
    assert_eq!(c.exit_code(), 4, "{}", c.stderr());
    assert_eq!(
        hash_image(&host.dev("sda")),
        sda_before,
        "bad media never costs the disk its contents"
    );
}

#[test]
fn without_a_terminal_it_refuses_at_once_and_points_to_the_scripted_install() {
    let host = host_of("bluefield3");
    let out = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(host.args(&[]))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs a terminal") && err.contains("ksinstall install --ks FILE"),
        "{err}"
    );
}

#[test]
fn boot_without_ks_opens_the_media_from_inst_repo_over_https_with_the_ca_file() {
    let host = host_of("bluefield3");
    let (ca, cert, key, _) = common::http::make_certs(host.dir.path());
    let srv = common::http::serve_tls(&host.path("media"), &cert, &key);
    // A PXE boot without ks=: the console starts on the media inst.repo= names.
    let args = |ca: Option<&Path>| -> Vec<String> {
        let mut a = vec![
            "boot".to_string(),
            "--sysroot".into(),
            host.path("root").display().to_string(),
            "--cmdline".into(),
            format!("runweasel inst.repo={}", srv.url),
        ];
        if let Some(ca) = ca {
            a.push("--ca-file".into());
            a.push(ca.display().to_string());
        }
        a
    };
    let c = Console::start(host.dir.path(), &args(Some(&ca)));
    c.wait_for(&["Welcome to the installation of VMware ESXi 8.0.3"]);
    assert!(
        srv.requests().iter().any(|r| r.path == "/MANIFEST.JSON"),
        "the media were not read over HTTPS"
    );
    drop(c);
    // The same boot without the CA: the built-in roots do not know it, and the console says so
    // before it takes the screen, with the way out.
    let c = Console::start(host.dir.path(), &args(None));
    assert_eq!(c.exit_code(), 4, "{}", c.stderr());
    assert!(c.stderr().contains("--ca-file"), "{}", c.stderr());
}

#[test]
fn a_disk_holding_esxi_is_offered_an_upgrade_with_the_scripted_plan() {
    let host = host_of("plain");
    let sda = host.dev("sda");
    // An older build of the same release installed on sda, by the scripted path.
    host.add_media(
        "old-media",
        48 << 20,
        "8.0.3",
        &synth::Variant {
            build: Some("8.0.3-0.35.24280700".into()),
            ..Default::default()
        },
    );
    let ks = host.path("old.cfg");
    std::fs::write(
        &ks,
        "vmaccepteula\nrootpw 'Plain-Secret-99x'\ninstall --firstdisk --overwritevmfs\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .arg("install")
        .arg("--ks")
        .arg(&ks)
        .arg("--media")
        .arg(host.path("old-media"))
        .arg("--sysroot")
        .arg(host.path("root"))
        .args(["--cmdline", ""])
        .arg("--disk")
        .arg(&sda)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bank5 = common::hash_range(&sda, 208_896 * 512, 8_595_456 * 512);
    let inv = ksinstall::inventory::Inventory::read(&host.path("root")).unwrap();
    let n = inv
        .disks
        .iter()
        .position(|d| d.kernel_name == "sda")
        .unwrap();

    let c = host.console(&[]);
    c.accept_eula();
    for _ in 0..n {
        c.keys(&["Down"]);
    }
    let s = c.press(&["Enter"], &["Go back: choose another disk"]);
    for want in [
        "ESXi 8.0.3-0.35.24280700 is installed on it",
        "> Upgrade: ESXi 8.0.3-0.35.24280700 -> 8.0.3-0.35.24280770",
        "Overwrite: erase the whole disk",
    ] {
        assert!(s.contains(want), "{want:?} not in\n{s}");
    }
    c.press(&["Enter"], &["Data Processing Unit (DPU)"]);
    let s = c.press(&["Enter"], &["Confirm install", "F11: install"]);
    for want in [
        "Upgrade ESXi 8.0.3-0.35.24280700 -> 8.0.3-0.35.24280770",
        "bank 5 boots now (updated=1): NOT written",
        "bank 6 is reformatted",
    ] {
        assert!(s.contains(want), "{want:?} not in\n{s}");
    }
    c.press(&["F11"], &["Installation complete"]);
    c.keys(&["Enter"]);
    assert_eq!(c.exit_code(), 0, "{}", c.stderr());
    let cfg = mtype(&sda, 8_597_504 * 512, "::/boot.cfg");
    assert!(
        cfg.contains("bootstate=1") && cfg.contains("updated=2") && cfg.contains("24280770"),
        "{cfg}"
    );
    assert_eq!(
        common::hash_range(&sda, 208_896 * 512, 8_595_456 * 512),
        bank5,
        "the running bank is untouched"
    );
}

/// A BlueField whose rshim cannot be reached (no rshim device, no daemon): the refusal and what
/// to do are on the first screen, before any question, since no answer can fix it.
#[test]
fn a_hardware_refusal_shows_on_the_first_screen_with_what_to_do() {
    // The BlueField without its rshim answering: no simulator started, so no rshim device.
    let host = Setup::with()
        .host("bluefield3")
        .disks_from_sysfs()
        .media("256M")
        .build();
    assert!(!host.path("root/dev/rshim0").exists());
    let c = host.console(&[]);
    let s = c.wait_for(&["Welcome", "The install cannot go ahead on this host"]);
    assert!(s.contains("BlueField-3"), "{s}");
    assert!(s.contains("no rshim device for"), "{s}");
    assert!(s.contains("--with-rshim"), "what to do: {s}");
    assert!(
        s.contains("No answer on the next screens changes this"),
        "{s}"
    );
}

/// `boot` without `ks=` starts the console, which checks `--report` before its first screen: a
/// path it cannot write is said once (one `failed`, no warning repeating it), with exit 3, and
/// no screen asks for answers.
#[test]
fn a_console_boot_whose_report_cannot_be_written_is_refused_once_before_any_screen() {
    let host = host_of("plain");
    let not_a_file = host.path("reports");
    std::fs::create_dir(&not_a_file).unwrap();
    let args: Vec<String> = [
        "boot",
        "--sysroot",
        host.path("root").to_str().unwrap(),
        "--cmdline",
        "runweasel",
        "--media",
        host.path("media").to_str().unwrap(),
        "--report",
        not_a_file.to_str().unwrap(),
        "--progress",
        "tty",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let c = Console::start(host.dir.path(), &args);
    assert_eq!(c.exit_code(), 3, "{}", c.stderr());
    // With plain progress lines on stderr: the `failed` event's line, then the final line.
    let err = c.stderr();
    assert_eq!(
        err.matches("error: plan: --report").count(),
        1,
        "one failed event:\n{err}"
    );
    assert!(
        !err.contains("warning"),
        "not said again as a warning:\n{err}"
    );
    assert!(
        err.contains("ksinstall: error: --report") && err.contains("not a regular file"),
        "{err}"
    );
    assert!(!c.screen().contains("End User License"), "{}", c.screen());
    assert!(not_a_file.is_dir(), "the directory is left as it was");
}
