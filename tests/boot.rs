//! `ksinstall boot` and `ksinstall pxe`, end to end with the real binary: kickstarts and media
//! from real HTTP and HTTPS servers on 127.0.0.1 (certificates made with the openssl CLI), from
//! a FAT32 USB stick and an ISO made with xorriso in fixture sysroots; servers that stall, drop
//! the connection or serve bad bytes; webhook receivers; PXE files checked with GRUB's own
//! grub-script-check.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::http::{make_certs, serve, serve_tls};
use common::setup::{ks_text, Setup, PASSWORD};
use common::text;
use common::{hash_image, run};
use ksinstall::exit::Outcome;
use ksinstall::media::{BootCfg, Manifest};
use ksinstall::pxe;

const P5: u64 = 208_896 * 512;

/// A 16M medium with the lower-case names of a PXE tree (as Linux mounts the ISO), served over
/// HTTP by the tests.
fn pxe_setup() -> Setup {
    Setup::with().media("16M").lower_case().build()
}

fn ksinstall(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ksinstall"))
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

/// `ksinstall boot --sysroot S --cmdline C ARGS...` with fast HTTP retries.
fn boot(sysroot: &Path, cmdline: &str, args: &[&str]) -> Output {
    let mut all = vec![
        "boot",
        "--sysroot",
        sysroot.to_str().unwrap(),
        "--cmdline",
        cmdline,
        "--http-backoff-ms",
        "50",
    ];
    all.extend_from_slice(args);
    ksinstall(&all)
}

fn code(o: &Output, want: i32) {
    assert_eq!(o.status.code(), Some(want), "{}", text(o));
}

fn says(o: &Output, what: &str) {
    assert!(text(o).contains(what), "{what:?} not in:\n{}", text(o));
}

fn bank_boot_cfg(img: &str) -> Option<String> {
    let (ok, out, _) = run("mtype", &["-i", &format!("{img}@@{P5}"), "::/boot.cfg"]);
    ok.then_some(out)
}

use common::json_lines;

#[test]
fn boot_over_http_tries_each_ks_url_includes_relative_files_and_sends_mac_and_serial() {
    let s = pxe_setup();
    s.put("net.cfg", "network --bootproto=static --ip=10.9.8.7 --netmask=255.255.255.0 --gateway=10.9.8.1 --hostname=from-include\n");
    s.put(
        "ks.cfg",
        "vmaccepteula\nrootpw 'Plain-Secret-99x'\ninstall --firstdisk --overwritevmfs\n%include ./net.cfg\nreboot\n",
    );
    let srv = serve(&s.path("media"));
    let root = s.copy_fixture("plain");
    std::fs::create_dir_all(root.join("sys/class/net/eno1")).unwrap();
    std::fs::write(
        root.join("sys/class/net/eno1/address"),
        "3C:EC:EF:01:02:03\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("sys/class/net/lo")).unwrap();
    std::fs::write(root.join("sys/class/net/lo/address"), "00:00:00:00:00:00\n").unwrap();
    std::fs::create_dir_all(root.join("sys/class/dmi/id")).unwrap();
    std::fs::write(root.join("sys/class/dmi/id/product_serial"), "SN-4711\n").unwrap();
    // The boot options come from proc/cmdline below the sysroot, as on a booted installer.
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::write(
        root.join("proc/cmdline"),
        format!(
            "runweasel ks={0}/missing.cfg ks={0}/ks.cfg BOOTIF=01-3c-ec-ef-01-02-03 inst.ks.sendmac inst.ks.sendsn\n",
            srv.url
        ),
    )
    .unwrap();
    let report = s.path("report.json");
    let out = ksinstall(&[
        "boot",
        "--sysroot",
        root.to_str().unwrap(),
        "--media",
        &srv.url,
        "--disk",
        &s.disk(),
        "--disk-size",
        "40G",
        "--report",
        report.to_str().unwrap(),
        "--http-backoff-ms",
        "50",
    ]);
    code(&out, 0);
    // The first URL is a 404: not retried, the second one is used.
    assert_eq!(srv.gets("/missing.cfg").len(), 1, "a 404 is not retried");
    says(&out, "missing.cfg: HTTP 404");
    let ks_get = &srv.gets("/ks.cfg")[0];
    assert_eq!(
        ks_get.header("X-RHN-Provisioning-MAC-0"),
        Some("eno1 3c:ec:ef:01:02:03")
    );
    assert_eq!(
        ks_get.header("X-RHN-Provisioning-MAC-1"),
        None,
        "no loopback"
    );
    assert_eq!(ks_get.header("X-System-Serial-Number"), Some("SN-4711"));
    assert!(ks_get
        .header("User-Agent")
        .is_some_and(|u| u.starts_with("ksinstall/")));
    // `./net.cfg` is resolved against the kickstart's URL and fetched with the same client.
    assert_eq!(srv.gets("/net.cfg").len(), 1);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(v["host"]["hostname"], "from-include");
    assert_eq!(v["media"]["location"], srv.url.as_str());
    let cfg = bank_boot_cfg(&s.disk()).expect("a bootable bank");
    assert!(
        cfg.contains(&format!("build={}", s.manifest().build)),
        "{cfg}"
    );
    // `reboot` in the kickstart, but no --allow-reboot: it says so and exits 0.
    says(
        &out,
        "the kickstart says reboot; not rebooting without --allow-reboot",
    );
}

#[test]
fn https_checks_certificates_with_the_ca_file_and_names_the_fix_when_it_fails() {
    let s = pxe_setup();
    s.put("ks.cfg", &ks_text(""));
    let (ca, cert, key, other_ca) = make_certs(s.dir.path());
    let srv = serve_tls(&s.path("media"), &cert, &key);
    let root = s.copy_fixture("plain");
    let cmdline = format!("ks={}/ks.cfg", srv.url);
    let dry = |extra: &[&str]| {
        let mut args = vec!["--media", &srv.url, "--dry-run", "--http-attempts", "2"];
        args.extend_from_slice(extra);
        boot(&root, &cmdline, &args)
    };
    let ok = dry(&["--ca-file", ca.to_str().unwrap()]);
    code(&ok, 0);
    says(&ok, "Partition 5");
    // Media over HTTPS too: the manifest was read through the same client.
    assert!(srv.requests().iter().any(|r| r.path == "/MANIFEST.JSON"));

    for bad in [
        dry(&["--ca-file", other_ca.to_str().unwrap()]),
        dry(&[]), // the web PKI roots do not know our test CA either
    ] {
        code(&bad, 1);
        says(&bad, "certificate is not trusted");
        says(&bad, "--ca-file");
        says(&bad, "ks.cfg");
    }
    // A certificate problem is not retried: one TLS handshake per attempt would be a waste.
    let bad = dry(&["--ca-file", other_ca.to_str().unwrap()]);
    assert!(!text(&bad).contains("attempt 1 of"), "{}", text(&bad));

    let insecure = dry(&["--insecure"]);
    code(&insecure, 0);
    // `install --ks URL` takes the kickstart from the same client, with the same options.
    let out = ksinstall(&[
        "install",
        "--ks",
        &format!("{}/ks.cfg", srv.url),
        "--media",
        &srv.url,
        "--sysroot",
        root.to_str().unwrap(),
        "--cmdline",
        "",
        "--dry-run",
        "--ca-file",
        ca.to_str().unwrap(),
    ]);
    code(&out, 0);
    says(&out, "Partition 5");

    let not_pem = s.path("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let out = dry(&["--ca-file", not_pem.to_str().unwrap()]);
    code(&out, 1);
    says(&out, "not.pem: holds no PEM certificate");
}

#[test]
fn a_stalled_server_is_timed_out_and_asked_again() {
    let s = pxe_setup();
    s.put("ks.cfg", &ks_text(""));
    let srv = serve(&s.path("media"));
    srv.rules
        .lock()
        .unwrap()
        .stall
        .insert("/ks.cfg".into(), (Duration::from_secs(4), 1));
    let root = s.copy_fixture("plain");
    let t = Instant::now();
    let out = boot(
        &root,
        &format!("ks={}/ks.cfg", srv.url),
        &["--media", &s.media(), "--dry-run", "--http-timeout", "1"],
    );
    code(&out, 0);
    says(&out, "attempt 1 of 4");
    assert_eq!(srv.gets("/ks.cfg").len(), 2);
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "did not wait out the stall"
    );

    // A server that never answers in time: the boot stops, naming the URL, after its tries.
    srv.rules
        .lock()
        .unwrap()
        .stall
        .insert("/ks.cfg".into(), (Duration::from_secs(3), 3));
    let out = boot(
        &root,
        &format!("ks={}/ks.cfg", srv.url),
        &[
            "--media",
            &s.media(),
            "--dry-run",
            "--http-timeout",
            "1",
            "--http-attempts",
            "2",
        ],
    );
    code(&out, 1);
    says(&out, "no kickstart could be read");
    says(&out, "gave up after 2 attempts");
}

/// The component the tests cut: the largest module of the boot bank.
fn largest_module(m: &Manifest) -> (String, u64, String) {
    let c = m
        .components
        .iter()
        .filter(|c| c.role == ksinstall::media::Role::Module)
        .max_by_key(|c| c.size)
        .unwrap();
    (c.path.clone(), c.size, c.sha256.clone())
}

#[test]
fn media_dropped_mid_file_is_resumed_with_a_range_request() {
    let s = pxe_setup();
    s.put("ks.cfg", &ks_text(""));
    let (module, size, sha) = largest_module(&s.manifest());
    let srv = serve(&s.path("media"));
    let cut = size / 3;
    srv.rules
        .lock()
        .unwrap()
        .drop_after
        .insert(format!("/{module}"), (cut, 2));
    let root = s.copy_fixture("plain");
    let report = s.path("report.json");
    let out = boot(
        &root,
        &format!("ks={}/ks.cfg", srv.url),
        &[
            "--media",
            &srv.url,
            "--disk",
            &s.disk(),
            "--disk-size",
            "40G",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    code(&out, 0);
    says(&out, &format!("resumed at byte {cut}"));
    let gets = srv.gets(&format!("/{module}"));
    assert_eq!(gets.len(), 3, "the first GET and two resumptions");
    assert_eq!(gets[0].header("Range"), None);
    assert_eq!(
        gets[1].header("Range"),
        Some(format!("bytes={cut}-").as_str())
    );
    assert_eq!(
        gets[2].header("Range"),
        Some(format!("bytes={}-", 2 * cut).as_str())
    );
    // What is on the disk, read back, is the module the manifest names.
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let w = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == module.as_str())
        .unwrap();
    assert_eq!(w["sha256"], sha.as_str());
    let back = s.path("back.bin");
    let (ok, _, err) = run(
        "mcopy",
        &[
            "-n",
            "-i",
            &format!("{}@@{P5}", s.disk()),
            &format!("::/{module}"),
            back.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(std::fs::metadata(&back).unwrap().len(), size);
}

#[test]
fn a_server_that_ignores_range_is_read_again_from_the_start() {
    let s = pxe_setup();
    let (module, size, sha) = largest_module(&s.manifest());
    let srv = serve(&s.path("media"));
    {
        let mut r = srv.rules.lock().unwrap();
        r.ignore_range = true;
        r.drop_after.insert(format!("/{module}"), (size / 2, 1));
    }
    let http = ksinstall::http::Http::new(ksinstall::http::HttpOptions {
        backoff: Duration::from_millis(10),
        ..Default::default()
    })
    .unwrap();
    let mut bytes = Vec::new();
    std::io::copy(
        &mut http.open(&format!("{}/{module}", srv.url)).unwrap(),
        &mut bytes,
    )
    .unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(ksinstall::media::verify::sha256_hex(&bytes), sha);
    assert_eq!(srv.gets(&format!("/{module}")).len(), 2);
}

#[test]
fn media_that_keeps_failing_or_is_corrupt_never_leaves_a_bootable_bank() {
    let s = pxe_setup();
    s.put("ks.cfg", &ks_text(""));
    // A disk that holds a good install first: what a failed reinstall must not leave bootable.
    let good = ksinstall(&[
        "install",
        "--ks",
        s.path("media/ks.cfg").to_str().unwrap(),
        "--media",
        &s.media(),
        "--disk",
        &s.disk(),
        "--disk-size",
        "40G",
        "--sysroot",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/plain")
            .to_str()
            .unwrap(),
        "--cmdline",
        "",
    ]);
    code(&good, 0);
    assert!(bank_boot_cfg(&s.disk()).is_some());
    let (module, _, _) = largest_module(&s.manifest());
    let srv = serve(&s.path("media"));
    // Every answer for the module closes right after its headers.
    srv.rules
        .lock()
        .unwrap()
        .drop_after
        .insert(format!("/{module}"), (0, u32::MAX));
    let root = s.copy_fixture("plain");
    let cmdline = format!("ks={}/ks.cfg", srv.url);
    let disk = s.disk();
    let args = [
        "--media",
        &srv.url,
        "--disk",
        &disk,
        "--http-attempts",
        "3",
        "--progress",
        "json",
    ];
    let out = boot(&root, &cmdline, &args);
    code(&out, 4);
    // Named with the VIB and payload that cover it.
    says(&out, &format!("{module} (VIB "));
    says(&out, "): reading the media failed");
    assert_eq!(srv.gets(&format!("/{module}")).len(), 3);
    assert!(
        bank_boot_cfg(&s.disk()).is_none(),
        "no boot.cfg: the bank is not bootable"
    );
    let events = json_lines(&out);
    assert_eq!(events.last().unwrap()["event"], "finished");
    assert_eq!(events.last().unwrap()["exit_code"], 4);

    // A corrupt module (the server's copy differs from the manifest): caught by SHA-256.
    srv.rules.lock().unwrap().drop_after.clear();
    let path = s.path("media").join(&module);
    let mut b = std::fs::read(&path).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x40;
    std::fs::write(&path, b).unwrap();
    let before = hash_image(Path::new(&disk));
    let out = boot(&root, &cmdline, &args);
    code(&out, 4);
    says(&out, &format!("{module} (VIB "));
    says(&out, "): SHA-256 is ");
    assert!(bank_boot_cfg(&s.disk()).is_none());
    assert_ne!(
        before,
        hash_image(Path::new(&disk)),
        "it did write, then stopped"
    );
}

#[test]
fn curtin_events_reach_a_webhook_in_order_even_when_a_post_fails_once() {
    let s = pxe_setup();
    s.put("ks.cfg", &ks_text("reboot --noeject\n"));
    let media = serve(&s.path("media"));
    let hook_dir = tempfile::tempdir().unwrap();
    let hook = serve(hook_dir.path());
    hook.rules.lock().unwrap().post_statuses = vec![500];
    let root = s.copy_fixture("plain");
    let out = boot(
        &root,
        &format!("ks={}/ks.cfg", media.url),
        &[
            "--media",
            &s.media(),
            "--disk",
            &s.disk(),
            "--disk-size",
            "40G",
            "--report-url",
            &format!("{}/maas/status", hook.url),
            "--report-format",
            "curtin",
            "--progress",
            "json",
        ],
    );
    code(&out, 0);
    let posts = hook.posts();
    assert_eq!(
        hook.requests().len(),
        posts.len(),
        "only POSTs reached the hook"
    );
    assert!(hook
        .requests()
        .iter()
        .all(|r| r.path == "/maas/status" && r.header("Content-Type") == Some("application/json")));
    // The first post was answered 500 and sent again: it is there twice, then never again.
    assert_eq!(posts[0], posts[1]);
    let seen: Vec<(String, String, String)> = posts[1..]
        .iter()
        .map(|p| {
            assert_eq!(p["origin"], "curtin");
            assert!(p["timestamp"].as_f64().unwrap() > 1.7e9);
            (
                p["name"].as_str().unwrap().to_string(),
                p["event_type"].as_str().unwrap().to_string(),
                p["result"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut want = vec![(
        "cmd-install".to_string(),
        "start".to_string(),
        String::new(),
    )];
    for step in [
        "source",
        "media",
        "partition",
        "bootloader",
        "bootbank",
        "verify",
        "bootcfg",
    ] {
        let name = format!("cmd-install/stage-{step}");
        want.push((name.clone(), "start".into(), String::new()));
        want.push((name, "finish".into(), "SUCCESS".into()));
    }
    // --disk overrides the kickstart's disk choice: a plan warning, so the install as a whole
    // finishes WARN (curtin: "something is likely wrong, but not fatal").
    want.push(("cmd-install".into(), "finish".into(), "WARN".into()));
    assert_eq!(seen, want);
    assert!(json_lines(&out)
        .iter()
        .any(|e| e["event"] == "warning" && e["step"] == "plan"));
    // The webhook carries the same steps as the --progress json stream.
    let started: Vec<String> = json_lines(&out)
        .iter()
        .filter(|e| e["event"] == "step_started")
        .map(|e| format!("cmd-install/stage-{}", e["step"].as_str().unwrap()))
        .collect();
    let posted: Vec<String> = seen
        .iter()
        .filter(|(n, t, _)| t == "start" && n != "cmd-install")
        .map(|(n, _, _)| n.clone())
        .collect();
    assert_eq!(started, posted);
    says(&out, "the kickstart says reboot --noeject; not rebooting");
}

#[test]
fn json_and_ironic_reports_and_a_dead_receiver_never_fail_the_install() {
    let s = pxe_setup();
    let root = s.copy_fixture("plain");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/ks.cfg"), ks_text("")).unwrap();
    std::fs::write(
        root.join("etc/bad.cfg"),
        "vmaccepteula\ninstall --firstdisk\nnosuchcommand\n",
    )
    .unwrap();
    let hook_dir = tempfile::tempdir().unwrap();

    // json: exactly the --progress json events (a dry run: source, media, finished).
    let hook = serve(hook_dir.path());
    let ks = "ks=file:///etc/ks.cfg";
    let out = boot(
        &root,
        ks,
        &[
            "--media",
            &s.media(),
            "--dry-run",
            "--progress",
            "json",
            "--report-url",
            &hook.url,
        ],
    );
    code(&out, 0);
    let shown: Vec<serde_json::Value> = json_lines(&out)
        .into_iter()
        .filter(|e| e["event"] != "plan" && e["event"] != "progress")
        .collect();
    let posted: Vec<serde_json::Value> = hook
        .posts()
        .into_iter()
        .filter(|e| e["event"] != "progress")
        .collect();
    assert_eq!(posted, shown);
    assert_eq!(posted.last().unwrap()["event"], "finished");

    // ironic: start, then error with the reason, the token and Ironic's API version header.
    let media = s.media();
    let ironic = |token: &[&str]| {
        let hook = serve(hook_dir.path());
        let url = format!("{}/v1/heartbeat/node-1", hook.url);
        let mut args = vec!["--media", &media, "--dry-run", "--report-url", &url];
        args.extend_from_slice(&["--report-format", "ironic"]);
        args.extend_from_slice(token);
        let out = boot(&root, "ks=/etc/bad.cfg", &args);
        code(&out, 2);
        hook
    };
    let hook = ironic(&["--report-token", "tok-123"]);
    let posts = hook.posts();
    let statuses: Vec<&str> = posts
        .iter()
        .map(|p| p["agent_status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["start", "error"]);
    assert!(posts.iter().all(|p| p["agent_token"] == "tok-123"));
    let msg = posts[1]["agent_status_message"].as_str().unwrap();
    assert!(
        msg.contains("exit code 2") && msg.contains("kickstart"),
        "{msg}"
    );
    assert!(hook
        .requests()
        .iter()
        .all(|r| r.header("X-OpenStack-Ironic-API-Version") == Some("1.72")));
    // The token from a file (its first line), kept out of the process list.
    let token_file = hook_dir.path().join("agent-token");
    std::fs::write(&token_file, "tok-456\n").unwrap();
    let hook = ironic(&["--report-token-file", token_file.to_str().unwrap()]);
    let posts = hook.posts();
    assert_eq!(posts.len(), 2);
    assert!(
        posts.iter().all(|p| p["agent_token"] == "tok-456"),
        "{posts:?}"
    );

    // A command line that stops the boot is reported too.
    let hook = serve(hook_dir.path());
    let out = boot(
        &root,
        "ks=uuid:1234",
        &[
            "--media",
            &s.media(),
            "--report-url",
            &hook.url,
            "--report-format",
            "ironic",
        ],
    );
    code(&out, 3);
    let posts = hook.posts();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1]["agent_status"], "error");
    assert!(posts[1]["agent_status_message"]
        .as_str()
        .unwrap()
        .contains("no longer a supported method"));

    // Nobody listening: every post fails, the install does not, and it does not wait long.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let t = Instant::now();
    let out = boot(
        &root,
        ks,
        &[
            "--media",
            &s.media(),
            "--disk",
            &s.disk(),
            "--disk-size",
            "40G",
            "--report-url",
            &dead,
        ],
    );
    code(&out, 0);
    says(&out, "report not delivered, dropped");
    assert!(bank_boot_cfg(&s.disk()).is_some());
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
}

/// A FAT32 file system in a 64 MiB image, at `offset` bytes (an MBR partition of type 0x0C
/// before it when `offset` > 0), holding `files`, made with mkfs.fat and mcopy.
fn fat32_stick(img: &Path, offset: u64, files: &[(&str, &str)]) {
    let size: u64 = 64 << 20;
    std::fs::File::create(img).unwrap().set_len(size).unwrap();
    let sectors = (size - offset) / 512;
    let (ok, o, e) = run(
        "mkfs.fat",
        &[
            "-F",
            "32",
            "--offset",
            &(offset / 512).to_string(),
            img.to_str().unwrap(),
            &(sectors / 2).to_string(), // in KiB blocks
        ],
    );
    assert!(ok, "{o}{e}");
    if offset > 0 {
        let mut mbr = vec![0u8; 512];
        mbr[446] = 0x80;
        mbr[446 + 4] = 0x0C;
        mbr[446 + 8..446 + 12].copy_from_slice(&u32::try_from(offset / 512).unwrap().to_le_bytes());
        mbr[446 + 12..446 + 16].copy_from_slice(&u32::try_from(sectors).unwrap().to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        common::poke(img, 0, &mbr);
    }
    let dir = img.with_extension("files");
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        if let Some(sub) = Path::new(name)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            let _ = run(
                "mmd",
                &[
                    "-i",
                    &format!("{}@@{offset}", img.display()),
                    &format!("::/{}", sub.display()),
                ],
            );
        }
        let (ok, _, e) = run(
            "mcopy",
            &[
                "-i",
                &format!("{}@@{offset}", img.display()),
                p.to_str().unwrap(),
                &format!("::/{name}"),
            ],
        );
        assert!(ok, "{e}");
    }
    let part = img.with_extension("part");
    common::extract(img, offset, size, &part);
    let (ok, o, e) = run("fsck.fat", &["-n", part.to_str().unwrap()]);
    assert!(ok, "{o}{e}");
}

#[test]
fn ks_usb_finds_the_kickstart_on_a_fat32_stick_and_rescans_as_esxi_does() {
    let s = pxe_setup();
    let root = s.copy_fixture("usb-boot");
    let ks = ks_text("").replace("--firstdisk", "--firstdisk=local");
    fat32_stick(
        &root.join("dev/sdb"),
        1 << 20,
        &[
            ("ks.cfg", &ks),
            ("KS/ESX1.CFG", &ks.replace("esx1.example", "esx-one")),
        ],
    );
    let out = boot(
        &root,
        "ks=usb",
        &["--media", &s.media(), "--dry-run", "--usb-scans", "1"],
    );
    code(&out, 0);
    says(&out, "ks=usb: found /dev/sdb partition 1:/ks.cfg");
    says(&out, "esx1.example");
    let out = boot(
        &root,
        "ks=usb:/ks/esx1.cfg",
        &["--media", &s.media(), "--dry-run", "--usb-scans", "1"],
    );
    code(&out, 0);
    says(&out, "esx-one");

    // Two sticks: a blank one and one formatted without a partition table.
    let twins = s.copy_fixture("usb-twins");
    fat32_stick(&twins.join("dev/sdc"), 0, &[("KS.CFG", &ks)]);
    let out = boot(
        &twins,
        "ks=usb",
        &["--media", &s.media(), "--dry-run", "--usb-scans", "1"],
    );
    code(&out, 0);
    says(&out, "ks=usb: found /dev/sdc whole disk:/ks.cfg");

    // No such file: scanned again after the pause, then a message naming what each disk had.
    let t = Instant::now();
    let out = boot(
        &twins,
        "ks=usb:/other.cfg",
        &[
            "--media",
            &s.media(),
            "--dry-run",
            "--usb-scans",
            "2",
            "--usb-scan-pause",
            "1",
        ],
    );
    code(&out, 1);
    assert!(t.elapsed() >= Duration::from_secs(1));
    says(&out, "scanning again in 1s (attempt 2 of 2)");
    says(
        &out,
        "no /other.cfg on a FAT16/FAT32 file system of a USB disk after 2 scan(s)",
    );
    says(&out, "/dev/sdb");
    says(&out, "whole disk (Fat32): no /other.cfg");
}

#[test]
fn ks_cdrom_reads_an_iso_made_with_xorriso_which_also_holds_the_media() {
    let s = pxe_setup();
    s.put("KS.CFG", &ks_text("reboot\n"));
    let root = s.copy_fixture("plain");
    let iso = root.join("dev/sr0");
    let (ok, o, e) = run(
        "xorriso",
        &[
            "-as",
            "mkisofs",
            "-J",
            "-R",
            "-V",
            "ESXI-KS",
            "-o",
            iso.to_str().unwrap(),
            s.path("media").to_str().unwrap(),
        ],
    );
    assert!(ok, "{o}{e}");
    // No --media: the installer media is the CD it booted from.
    let out = boot(
        &root,
        "runweasel cdromBoot ks=cdrom:/KS.CFG",
        &["--disk", &s.disk(), "--disk-size", "40G"],
    );
    code(&out, 0);
    let cfg = bank_boot_cfg(&s.disk()).expect("a bootable bank");
    assert!(
        cfg.contains(&format!("build={}", s.manifest().build)),
        "{cfg}"
    );
    says(
        &out,
        &format!(
            "not rebooting without --allow-reboot (would eject {})",
            iso.display()
        ),
    );

    let out = boot(&root, "ks=cdrom:/NOPE.CFG", &["--dry-run"]);
    code(&out, 1);
    says(&out, "ks=cdrom:/NOPE.CFG");
    says(&out, "no file NOPE.CFG in the image");
}

#[test]
fn boot_option_errors_unsupported_sources_and_no_ks() {
    let s = pxe_setup();
    let root = s.copy_fixture("plain");
    let media = s.media();
    // No ks=: the console install, as on ESXi; here it has no terminal and says so.
    let out = boot(&root, "runweasel", &["--media", &media]);
    code(&out, 1);
    says(&out, "the console install needs a terminal");
    let out = boot(&root, "ks=uuid:1234", &["--media", &media]);
    code(&out, 3);
    says(&out, "no longer a supported method");
    let out = boot(
        &root,
        "ip=10.0.0.5 netmask=255.255.255.0 ks=nfs://host/ks.cfg ks=ftp://h/ks.cfg",
        &["--media", &media],
    );
    code(&out, 1);
    says(
        &out,
        "ks=nfs://host/ks.cfg: FTP and NFS kickstarts are not supported",
    );
    says(&out, "ks=ftp://h/ks.cfg: FTP and NFS");
    let out = boot(&root, "netmask=255.255.255.0 ks=usb", &["--media", &media]);
    code(&out, 3);
    says(&out, "netmask= without ip=");
    // ks=file:// is read below the sysroot (the installer's /).
    std::fs::create_dir_all(root.join("etc/vmware/weasel")).unwrap();
    std::fs::write(root.join("etc/vmware/weasel/ks.cfg"), ks_text("")).unwrap();
    let out = boot(
        &root,
        "ks=file://etc/vmware/weasel/ks.cfg",
        &["--media", &media, "--dry-run"],
    );
    code(&out, 0);
    // No --media and no CD holding media.
    let out = boot(&root, "ks=file://etc/vmware/weasel/ks.cfg", &["--dry-run"]);
    code(&out, 4);
    says(&out, "no installation media: give --media");
}

#[test]
fn pxe_files_boot_the_installer_image_with_each_hosts_kickstart() {
    let s = pxe_setup();
    s.put("ks.cfg", &ks_text(""));
    s.put("esx2.cfg", &ks_text("").replace("esx1.example", "esx-two"));
    let srv = serve(&s.path("media"));
    let out_dir = s.path("tftp");
    let image_url = "http://10.0.0.1/image";
    // Without --http-url there is no inst.repo= to give: refused, nothing written.
    let args = |extra: &[&str]| {
        let mut a = vec![
            "pxe".to_string(),
            "--media".into(),
            s.media(),
            "--ks-url".into(),
            format!("{}/ks.cfg", srv.url),
            "--out".into(),
            out_dir.to_str().unwrap().into(),
            "--host".into(),
            format!("3C-EC-EF-01-02-03={}/esx2.cfg", srv.url),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run_pxe = |a: &[String]| ksinstall(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let a = args(&[]);
    let out = run_pxe(&a);
    code(&out, 1);
    says(&out, "--loader ksinstall needs --http-url");
    assert!(!out_dir.exists());

    let a = args(&[
        "--http-url",
        &srv.url,
        "--image-url",
        image_url,
        "--append",
        "inst.ks.sendmac",
    ]);
    let out = run_pxe(&a);
    code(&out, 0);
    let read = |p: &str| std::fs::read_to_string(out_dir.join(p)).unwrap();
    // No mboot files: the hosts boot our kernel, not VMware's loader.
    assert!(!out_dir.join("boot.cfg").exists());

    grub_script_check(&out_dir, "grub.cfg");
    let grub = read("grub.cfg");
    assert!(
        grub.contains(&format!(
            "    set ks={}/esx2.cfg\n    set bootif=BOOTIF=01-3c-ec-ef-01-02-03",
            srv.url
        )),
        "{grub}"
    );
    // --image-url: GRUB fetches the image over HTTP too.
    assert!(
        grub.contains("  linux (http,10.0.0.1)/image/vmlinuz ks=$ks inst.repo="),
        "{grub}"
    );
    assert!(
        grub.contains("  initrd (http,10.0.0.1)/image/initrd.img\n"),
        "{grub}"
    );

    // PXELINUX: our kernel and initrd, the host's ks=, IPAPPEND 2 for BOOTIF=.
    let host = read("pxelinux.cfg/01-3c-ec-ef-01-02-03");
    let append = host
        .lines()
        .find_map(|l| l.trim().strip_prefix("APPEND "))
        .unwrap()
        .to_string();
    assert!(
        host.contains(&format!(
            "  KERNEL {image_url}/vmlinuz\n  INITRD {image_url}/initrd.img\n"
        )),
        "{host}"
    );
    assert!(host.contains("  IPAPPEND 2\n"), "{host}");
    assert_eq!(
        append,
        format!(
            "ks={}/esx2.cfg inst.repo={} console=tty0 console=ttyS0,115200 inst.ks.sendmac",
            srv.url, srv.url
        )
    );
    assert!(read("pxelinux.cfg/default").contains(&format!("APPEND ks={}/ks.cfg ", srv.url)));

    // iPXE: the host's ks= by MAC, then our kernel with BOOTIF= of the NIC it booted from.
    let ipxe = read("boot.ipxe");
    assert!(ipxe.starts_with("#!ipxe\n"));
    for line in ipxe.lines().skip(1) {
        let word = line.split_whitespace().next().unwrap_or("");
        assert!(
            line.starts_with('#') || ["iseq", "set", "kernel", "initrd", "boot"].contains(&word),
            "not an iPXE command: {line}"
        );
    }
    assert!(
        ipxe.contains(&format!(
            "iseq ${{netX/mac}} 3c:ec:ef:01:02:03 && set ks {}/esx2.cfg ||",
            srv.url
        )),
        "{ipxe}"
    );
    assert!(
        ipxe.contains(&format!(
            "kernel {image_url}/vmlinuz initrd=initrd.img ks=${{ks}} inst.repo={} ",
            srv.url
        )),
        "{ipxe}"
    );
    assert!(ipxe.contains("BOOTIF=01-${netX/mac:hexhyp}"), "{ipxe}");
    assert!(
        ipxe.contains(&format!("initrd {image_url}/initrd.img\nboot\n")),
        "{ipxe}"
    );
    // Secure Boot: Debian's signed network GRUB (started by shim) reads grub/grub.cfg; it loads
    // the kernel over TFTP (it has no HTTP) with the host's ks= and BOOTIF=.
    grub_script_check(&out_dir, "grub/grub.cfg");
    let sb = read("grub/grub.cfg");
    assert!(
        sb.contains(&format!(
            "  if [ \"$net_default_mac\" = \"3c:ec:ef:01:02:03\" ]; then\n    set ks={}/esx2.cfg\n    set bootif=BOOTIF=01-3c-ec-ef-01-02-03\n  fi",
            srv.url
        )),
        "{sb}"
    );
    assert!(
        sb.contains(&format!("  linux /vmlinuz ks=$ks inst.repo={} ", srv.url)),
        "{sb}"
    );
    assert!(sb.contains("  initrd /initrd.img\n"), "{sb}");
    // The output says which entry fits which firmware setting.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("UEFI, Secure Boot on:  DHCP boot file shimx64.efi"),
        "{err}"
    );
    // UEFI HTTP boot: the UKI's URL, and how to build it with the host's command line.
    let http = read("http-boot.txt");
    assert!(
        http.lines()
            .any(|l| l == format!("{image_url}/ksinstall.efi")),
        "{http}"
    );
    assert!(
        http.contains("cargo xtask image --out DIR-01-3c-ec-ef-01-02-03 --cmdline \"ks="),
        "{http}"
    );

    // What PXELINUX hands the host's kernel (APPEND + IPAPPEND's BOOTIF=) starts `ksinstall
    // boot` on that host's kickstart with the media from inst.repo=.
    let root = s.copy_fixture("plain");
    std::fs::create_dir_all(root.join("sys/class/net/eno1")).unwrap();
    std::fs::write(
        root.join("sys/class/net/eno1/address"),
        "3c:ec:ef:01:02:03\n",
    )
    .unwrap();
    let cmdline = format!("{append} BOOTIF=01-3c-ec-ef-01-02-03");
    let out = boot(&root, &cmdline, &["--dry-run"]);
    code(&out, 0);
    says(&out, "esx-two");
    assert!(
        !srv.gets("/imgdb.tgz").is_empty(),
        "the media were not read from inst.repo="
    );
}

/// The image's init (xtask/image/init) `ks_by_mac` function, run by sh: the command line with
/// every `@MAC@` replaced by `mac` as aa-bb-cc-dd-ee-ff.
fn init_ks_by_mac(cmdline: &str, mac: &str) -> String {
    let init =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("xtask/image/init"))
            .unwrap();
    let start = init.find("ks_by_mac() {").expect("ks_by_mac in the init");
    let end = start + init[start..].find("\n}\n").unwrap() + 3;
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{}ks_by_mac \"$1\" \"$2\"", &init[start..end]))
        .args(["sh", cmdline, mac])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// Hosts without a --host entry: GRUB gives them BOOTIF= from the firmware's MAC too (iPXE and
/// PXELINUX already did); grub.cfg loads the image from --image-url; one UEFI HTTP-boot build
/// finds each host's kickstart by MAC (--out-url), and `ksinstall boot` installs that host's.
#[test]
fn pxe_bootif_without_host_entry_grub_image_url_and_http_boot_by_mac() {
    let s = pxe_setup();
    s.put("ks.cfg", &ks_text(""));
    s.put("esx2.cfg", &ks_text("").replace("esx1.example", "esx-two"));
    let srv = serve(&s.path("media"));
    let out_dir = s.path("media/pxe");
    let out = ksinstall(&[
        "pxe",
        "--media",
        &s.media(),
        "--ks-url",
        &format!("{}/ks.cfg", srv.url),
        "--out",
        out_dir.to_str().unwrap(),
        "--host",
        &format!("3c:ec:ef:01:02:03={}/esx2.cfg", srv.url),
        "--http-url",
        &srv.url,
        "--image-url",
        "http://10.0.0.1:8080/image/",
        "--out-url",
        &format!("{}/pxe/", srv.url),
    ]);
    code(&out, 0);
    let read = |p: &str| std::fs::read_to_string(out_dir.join(p)).unwrap();
    let bootif = "  set bootif=\n  if regexp --set=1:m1 --set=2:m2 --set=3:m3 --set=4:m4 --set=5:m5 --set=6:m6 '^(..):(..):(..):(..):(..):(..)$' \"$net_default_mac\"; then\n    set bootif=BOOTIF=01-$m1-$m2-$m3-$m4-$m5-$m6\n  fi\n";
    for cfg in ["grub.cfg", "grub/grub.cfg"] {
        grub_script_check(&out_dir, cfg);
        let text = read(cfg);
        // Every host, before its own entry is looked at: BOOTIF= from the firmware.
        let at = text
            .find(bootif)
            .unwrap_or_else(|| panic!("{cfg}: no BOOTIF= from $net_default_mac:\n{text}"));
        assert!(
            at < text.find("  if [ \"$net_default_mac\" = ").unwrap(),
            "{text}"
        );
    }
    let grub = read("grub.cfg");
    assert!(
        grub.contains("  linux (http,10.0.0.1,8080)/image/vmlinuz ks=$ks inst.repo="),
        "{grub}"
    );
    assert!(
        grub.contains("  initrd (http,10.0.0.1,8080)/image/initrd.img\n"),
        "{grub}"
    );
    // Debian's signed network GRUB has no HTTP: the Secure Boot entry stays on TFTP.
    assert!(read("grub/grub.cfg").contains("  linux /vmlinuz ks=$ks "));

    // UEFI HTTP boot: one build for every --host, its ks= by MAC.
    let http = read("http-boot.txt");
    let cmdline = http
        .lines()
        .find_map(|l| {
            l.strip_prefix("#   cargo xtask image --out DIR --cmdline \"")
                .and_then(|r| r.strip_suffix('"'))
        })
        .unwrap_or_else(|| panic!("no one build for the hosts:\n{http}"));
    assert!(
        cmdline.starts_with(&format!("ks={}/pxe/ks/@MAC@.cfg inst.repo=", srv.url)),
        "{cmdline}"
    );
    assert!(!http.contains("DIR-01-3c-ec-ef-01-02-03"), "{http}");
    assert_eq!(
        read("ks/3c-ec-ef-01-02-03.cfg").lines().last(),
        Some(format!("%include {}/esx2.cfg", srv.url).as_str())
    );
    // What the image makes of that command line on this host, and what `ksinstall boot` then
    // installs: the host's own kickstart, fetched through the by-MAC file.
    let on_host = init_ks_by_mac(cmdline, "3C:EC:EF:01:02:03");
    assert!(
        on_host.starts_with(&format!("ks={}/pxe/ks/3c-ec-ef-01-02-03.cfg ", srv.url)),
        "{on_host}"
    );
    let root = s.copy_fixture("plain");
    let out = boot(&root, &on_host, &["--dry-run"]);
    code(&out, 0);
    says(&out, "esx-two");
    assert!(!srv.gets("/pxe/ks/3c-ec-ef-01-02-03.cfg").is_empty());
    assert!(!srv.gets("/esx2.cfg").is_empty());
}

#[test]
fn pxe_files_parse_with_grub_and_carry_ks_and_bootif_to_the_installer() {
    let s = pxe_setup();
    s.put("ks.cfg", &ks_text(""));
    s.put("esx2.cfg", &ks_text("").replace("esx1.example", "esx-two"));
    let srv = serve(&s.path("media"));
    let out_dir = s.path("tftp");
    let out = ksinstall(&[
        "pxe",
        "--loader",
        "esxi",
        "--media",
        &s.media(),
        "--ks-url",
        &format!("{}/ks.cfg", srv.url),
        "--out",
        out_dir.to_str().unwrap(),
        "--host",
        &format!("3C-EC-EF-01-02-03={}/esx2.cfg", srv.url),
        "--http-url",
        &srv.url,
        "--append",
        "inst.ks.sendmac",
    ]);
    code(&out, 0);
    let read = |p: &str| std::fs::read_to_string(out_dir.join(p)).unwrap();

    // GRUB's own checker accepts the config.
    grub_script_check(&out_dir, "grub.cfg");
    let grub = read("grub.cfg");
    assert!(
        grub.contains("\"$net_default_mac\" = \"3c:ec:ef:01:02:03\""),
        "{grub}"
    );
    assert!(
        grub.contains("set cfg=01-3c-ec-ef-01-02-03/boot.cfg"),
        "{grub}"
    );
    assert!(
        // The loader as the (lower-case) tree spells it: TFTP matches names exactly.
        grub.contains("chainloader /efi/boot/bootx64.efi -c $cfg"),
        "{grub}"
    );
    // And the checker does fail on a broken script, so the check above means something.
    std::fs::write(
        s.path("broken.cfg"),
        "menuentry \"x\" {\n  if [ a ]; then\n}\n",
    )
    .unwrap();
    let (ok, _, _) = run(
        "grub-script-check",
        &[s.path("broken.cfg").to_str().unwrap()],
    );
    assert!(!ok);

    // PXELINUX: VMware's entry, with IPAPPEND 2 so BOOTIF= reaches the installer.
    assert_eq!(
        read("pxelinux.cfg/01-3c-ec-ef-01-02-03")
            .lines()
            .skip(1)
            .collect::<Vec<_>>(),
        [
            "DEFAULT install",
            "NOHALT 1",
            "LABEL install",
            "  KERNEL mboot.c32",
            "  APPEND -c 01-3c-ec-ef-01-02-03/boot.cfg",
            "  IPAPPEND 2"
        ]
    );
    assert!(read("pxelinux.cfg/default").contains("APPEND -c boot.cfg\n"));

    // iPXE: only iPXE commands, labels and comments; every file it names exists.
    let ipxe = read("boot.ipxe");
    assert!(ipxe.starts_with("#!ipxe\n"));
    for line in ipxe.lines().skip(1) {
        let word = line.split_whitespace().next().unwrap_or("");
        assert!(
            line.starts_with('#')
                || line.starts_with(':')
                || ["iseq", "set", "goto", "kernel", "boot"].contains(&word),
            "not an iPXE command: {line}"
        );
        for url in line.split_whitespace().filter(|w| w.starts_with("http")) {
            let rel = url.strip_prefix(&format!("{}/", srv.url)).unwrap();
            assert!(
                out_dir.join(rel).is_file() || s.path("media").join(rel).is_file(),
                "{url} names no file"
            );
        }
    }
    // The NIC iPXE booted from, not only the first one.
    assert!(
        ipxe.contains("iseq ${netX/mac} 3c:ec:ef:01:02:03 && goto host0 ||"),
        "{ipxe}"
    );
    assert!(!ipxe.contains("${net0/"), "{ipxe}");

    // boot.cfg: the media's, with prefix= the HTTP URL, relative modules, no cdromBoot, ks=.
    let media_cfg =
        BootCfg::parse(&std::fs::read_to_string(s.path("media/boot.cfg")).unwrap()).unwrap();
    let host_cfg = BootCfg::parse(&read("01-3c-ec-ef-01-02-03/boot.cfg")).unwrap();
    assert_eq!(host_cfg.prefix.as_deref(), Some(srv.url.as_str()));
    assert_eq!(host_cfg.build, media_cfg.build);
    assert_eq!(host_cfg.modules.len(), media_cfg.modules.len());
    assert!(host_cfg.modules.iter().all(|m| !m.starts_with('/')));
    for f in host_cfg.files() {
        let rel = f.strip_prefix(&format!("{}/", srv.url)).unwrap();
        assert!(s.path("media").join(rel).is_file(), "{f}");
    }
    let kernelopt = host_cfg.kernelopt.clone().unwrap();
    assert_eq!(
        kernelopt,
        format!(
            "runweasel ks={}/esx2.cfg inst.repo={} BOOTIF=01-3c-ec-ef-01-02-03 inst.ks.sendmac",
            srv.url, srv.url
        )
    );
    let default_cfg = BootCfg::parse(&read("boot.cfg")).unwrap();
    assert_eq!(
        default_cfg.kernelopt.as_deref(),
        Some(
            format!(
                "runweasel ks={}/ks.cfg inst.repo={} inst.ks.sendmac",
                srv.url, srv.url
            )
            .as_str()
        )
    );

    // The kernel command line a host gets starts `ksinstall boot` on its own kickstart, with
    // the media where inst.repo= says (no --media).
    let root = s.copy_fixture("plain");
    std::fs::create_dir_all(root.join("sys/class/net/eno1")).unwrap();
    std::fs::write(
        root.join("sys/class/net/eno1/address"),
        "3c:ec:ef:01:02:03\n",
    )
    .unwrap();
    let out = boot(&root, &kernelopt, &["--dry-run"]);
    code(&out, 0);
    says(&out, "esx-two");
    assert!(
        !srv.gets("/imgdb.tgz").is_empty(),
        "the media were not read from inst.repo="
    );
    // --media wins over inst.repo= (here a port nothing listens on).
    let elsewhere = kernelopt.replace(
        &format!("inst.repo={}", srv.url),
        "inst.repo=http://127.0.0.1:9/esxi",
    );
    assert_ne!(elsewhere, kernelopt);
    let out = boot(&root, &elsewhere, &["--media", &srv.url, "--dry-run"]);
    code(&out, 0);
    // A BOOTIF= naming a NIC the machine does not have stops the boot, as on ESXi.
    let other = kernelopt.replace("BOOTIF=01-3c-ec-ef-01-02-03", "BOOTIF=01-3c-ec-ef-09-09-09");
    let out = boot(&root, &other, &["--media", &srv.url, "--dry-run"]);
    code(&out, 3);
    says(&out, "netdevice=3c:ec:ef:09:09:09");
    says(&out, "no network interface has this MAC address");
    assert_eq!(
        srv.gets("/esx2.cfg")[0].header("X-RHN-Provisioning-MAC-0"),
        Some("eno1 3c:ec:ef:01:02:03")
    );

    // Bad input is refused before anything is written.
    let out = ksinstall(&[
        "pxe",
        "--media",
        &s.media(),
        "--ks-url",
        "nfs://h/ks.cfg",
        "--out",
        s.path("tftp2").to_str().unwrap(),
    ]);
    code(&out, 1);
    says(&out, "must be http:// or https://");
    assert!(!s.path("tftp2").exists());
    let out = ksinstall(&[
        "pxe",
        "--media",
        &s.media(),
        "--ks-url",
        "http://h/ks.cfg",
        "--out",
        s.path("tftp2").to_str().unwrap(),
        "--host",
        "3c:ec:ef:01:02=http://h/x.cfg",
    ]);
    code(&out, 1);
    says(&out, "is not a MAC address");
}

/// The files under `dir`, by path relative to it, with their bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The request document: the same request as `ksinstall pxe` options and as JSON handed to the
/// library makes the same files, byte for byte, in the same order, with the same warnings; the
/// JSON reads back as the request it was.
#[test]
fn a_pxe_request_document_makes_the_files_the_options_make() {
    let s = Setup::new("16M");
    for loader in ["ksinstall", "esxi"] {
        let by_cli = s.path(&format!("cli-{loader}"));
        let by_lib = s.path(&format!("lib-{loader}"));
        let out = ksinstall(&[
            "pxe",
            "--loader",
            loader,
            "--media",
            &s.media(),
            "--ks-url",
            "http://10.0.0.1/ks.cfg",
            "--out",
            by_cli.to_str().unwrap(),
            "--host",
            "3C-EC-EF-01-02-03=http://10.0.0.1/esx2.cfg",
            "--http-url",
            "http://10.0.0.1/media/",
            "--image-url",
            "https://10.0.0.1/image",
            "--out-url",
            "http://10.0.0.1/pxe",
            "--append",
            "inst.ks.sendmac",
        ]);
        code(&out, 0);
        let doc = serde_json::json!({
            "loader": loader,
            "media": s.media(),
            "ks_url": "http://10.0.0.1/ks.cfg",
            "out": by_lib,
            "hosts": [{"mac": "3C-EC-EF-01-02-03", "ks_url": "http://10.0.0.1/esx2.cfg"}],
            "http_url": "http://10.0.0.1/media/",
            "image_url": "https://10.0.0.1/image",
            "out_url": "http://10.0.0.1/pxe",
            "append": "inst.ks.sendmac",
        });
        let request: pxe::Request = serde_json::from_value(doc).unwrap();
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            serde_json::from_str::<pxe::Request>(&json).unwrap(),
            request
        );
        let generated = pxe::generate(&request).unwrap();
        // The same document given to `ksinstall pxe --request`.
        let by_file = s.path(&format!("file-{loader}"));
        let file = s.path(&format!("request-{loader}.json"));
        let mut doc = serde_json::to_value(&request).unwrap();
        doc["out"] = serde_json::json!(by_file);
        std::fs::write(&file, doc.to_string()).unwrap();
        let from_file = ksinstall(&["pxe", "--request", file.to_str().unwrap()]);
        code(&from_file, 0);
        assert_eq!(tree(&by_file), tree(&by_cli), "{loader}");

        let cli_files = tree(&by_cli);
        assert_eq!(tree(&by_lib), cli_files, "{loader}");
        assert!(cli_files.contains_key("pxelinux.cfg/01-3c-ec-ef-01-02-03"));
        // The CLI prints the files in the order the library wrote them.
        let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                Path::new(l)
                    .strip_prefix(&by_cli)
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        let written: Vec<String> = generated
            .files
            .iter()
            .map(|f| f.path.strip_prefix(&by_lib).unwrap().display().to_string())
            .collect();
        assert_eq!(printed, written);
        assert_eq!(written.len(), cli_files.len());
        // Every per-host file says whose it is; the default files say no host.
        for f in &generated.files {
            let per_host = f.path.to_string_lossy().contains("3c-ec-ef-01-02-03");
            assert_eq!(
                f.host.as_deref(),
                per_host.then_some("3c:ec:ef:01:02:03"),
                "{f:?}"
            );
        }
        let err = String::from_utf8_lossy(&out.stderr);
        for w in &generated.warnings {
            assert!(err.contains(&format!("ksinstall: warning: {w}")), "{err}");
        }
        match loader {
            "ksinstall" => {
                assert_eq!(
                    generated.warnings,
                    [pxe::Warning::GrubCannotFetchImage {
                        url: "https://10.0.0.1/image".into()
                    }]
                );
                assert!(generated
                    .files
                    .iter()
                    .any(|f| f.role == pxe::Role::Kickstart
                        && f.path.ends_with("ks/3c-ec-ef-01-02-03.cfg")));
            }
            _ => assert!(generated.files.iter().any(|f| f.role == pxe::Role::BootCfg
                && f.path.ends_with("01-3c-ec-ef-01-02-03/boot.cfg"))),
        }
    }
}

/// A request the checks refuse says why as a typed error, and nothing is written.
#[test]
fn a_refused_pxe_request_is_a_typed_error_and_writes_nothing() {
    let s = Setup::new("16M");
    let out = s.path("out");
    let request = |extra: serde_json::Value| -> pxe::Request {
        let mut doc = serde_json::json!({
            "media": s.media(),
            "ks_url": "http://10.0.0.1/ks.cfg",
            "out": out,
            "http_url": "http://10.0.0.1/media",
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        serde_json::from_value(doc).unwrap()
    };
    let e = pxe::generate(&request(serde_json::json!({"ks_url": "nfs://h/ks.cfg"}))).unwrap_err();
    assert!(
        matches!(
            &e,
            pxe::PxeError::Url {
                field: pxe::UrlField::KsUrl,
                error: pxe::UrlError {
                    problem: pxe::UrlProblem::NotHttp,
                    ..
                }
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.outcome(), Outcome::UsageOrIo);
    let e = pxe::generate(&request(serde_json::json!({"out_url": "http://h/a b"}))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--out-url http://h/a b: no spaces or quotes in a boot option"
    );
    let e = pxe::generate(&request(serde_json::json!({
        "hosts": [{"mac": "3c:ec:ef:01:02", "ks_url": "http://h/x.cfg"}]
    })))
    .unwrap_err();
    assert!(
        matches!(&e, pxe::PxeError::Host(pxe::HostError::NotAMac { mac, .. }) if mac == "3c:ec:ef:01:02"),
        "{e:?}"
    );
    let e = pxe::generate(&request(serde_json::json!({"http_url": null}))).unwrap_err();
    assert!(matches!(e, pxe::PxeError::NeedsHttpUrl), "{e:?}");
    let e = pxe::generate(&request(serde_json::json!({"media": s.path("nothing")}))).unwrap_err();
    assert_eq!(e.outcome(), Outcome::Media);
    assert!(!out.exists());
    // An unknown field is refused, not ignored.
    let typo = serde_json::json!({"media": "m", "ks_url": "http://h/k", "out": "o", "host": []});
    assert!(serde_json::from_value::<pxe::Request>(typo).is_err());
    // --request and the options are one or the other.
    let out = ksinstall(&["pxe", "--request", "r.json", "--ks-url", "http://h/ks.cfg"]);
    code(&out, 1);
    says(&out, "cannot be used with");
    std::fs::write(
        s.path("bad.json"),
        r#"{"media": "m", "ks_url": "http://h/k"}"#,
    )
    .unwrap();
    let out = ksinstall(&["pxe", "--request", s.path("bad.json").to_str().unwrap()]);
    code(&out, 1);
    says(&out, "missing field `out`");
    // `--host` as clap reads it.
    assert_eq!(
        pxe::parse_host("3C-EC-EF-01-02-03=http://h/x.cfg"),
        Ok(pxe::Host {
            mac: "3c:ec:ef:01:02:03".into(),
            ks_url: "http://h/x.cfg".into()
        })
    );
    assert!(matches!(
        pxe::parse_host("3c:ec:ef:01:02:03"),
        Err(pxe::HostError::NotMacEqualsUrl { .. })
    ));
    assert!(matches!(
        pxe::parse_host("3c:ec:ef:01:02:03=ftp://h/x"),
        Err(pxe::HostError::Url {
            url: pxe::UrlError {
                problem: pxe::UrlProblem::NotHttp,
                ..
            },
            ..
        })
    ));
}

#[test]
fn an_https_kickstart_is_never_taken_from_a_redirect_to_plain_http() {
    let s = pxe_setup();
    s.put("ks.cfg", &ks_text(""));
    let (ca, cert, key, _) = make_certs(s.dir.path());
    let plain = serve(&s.path("media"));
    let tls = serve_tls(&s.path("media"), &cert, &key);
    tls.rules
        .lock()
        .unwrap()
        .redirect
        .insert("/ks.cfg".into(), format!("{}/ks.cfg", plain.url));
    let root = s.copy_fixture("plain");
    let out = boot(
        &root,
        &format!("ks={}/ks.cfg", tls.url),
        &[
            "--media",
            &s.media(),
            "--dry-run",
            "--ca-file",
            ca.to_str().unwrap(),
            "--http-attempts",
            "1",
        ],
    );
    code(&out, 1);
    says(&out, "ks.cfg");
    assert!(
        plain.gets("/ks.cfg").is_empty(),
        "the kickstart was fetched in cleartext"
    );
}

#[test]
fn a_webhook_that_answers_with_a_redirect_has_not_received_the_event() {
    let s = pxe_setup();
    s.put("ks.cfg", &ks_text(""));
    let media = serve(&s.path("media"));
    let hook_dir = tempfile::tempdir().unwrap();
    let hook = serve(hook_dir.path());
    hook.rules.lock().unwrap().post_statuses = vec![303; 64];
    let root = s.copy_fixture("plain");
    let out = boot(
        &root,
        &format!("ks={}/ks.cfg", media.url),
        &[
            "--media",
            &s.media(),
            "--dry-run",
            "--report-url",
            &format!("{}/events", hook.url),
            "--report-format",
            "json",
        ],
    );
    // The install itself is not failed by its reports ...
    code(&out, 0);
    // ... but the redirect is not followed as a GET, and the loss is said.
    assert!(hook.gets("/ok").is_empty(), "{:?}", hook.requests());
    says(&out, "a report is not re-sent elsewhere");
}

#[test]
fn a_password_in_a_url_is_sent_as_basic_auth_and_never_shown() {
    let s = pxe_setup();
    s.put("ks.cfg", &ks_text("%include ./kb.cfg\n"));
    s.put("kb.cfg", "keyboard 'US Default'\n");
    let srv = serve(&s.path("media"));
    let root = s.copy_fixture("plain");
    let authed = srv.url.replacen("http://", "http://deploy:S3cr3t-pw@", 1);
    let shown = srv.url.replacen("http://", "http://deploy:***@", 1);
    let out = boot(
        &root,
        &format!("ks={authed}/ks.cfg"),
        &["--media", &authed, "--dry-run", "--progress", "json"],
    );
    code(&out, 0);
    // The server got the credentials (ureq sends the userinfo as Basic auth)...
    // The relative include too: it is resolved against the URL, credentials and all.
    for file in ["/ks.cfg", "/kb.cfg"] {
        let got = srv.gets(file);
        assert_eq!(
            got.first().and_then(|r| r.header("Authorization")),
            Some("Basic ZGVwbG95OlMzY3IzdC1wdw=="),
            "{file}"
        );
    }
    // ...and nothing printed, logged or planned shows the password.
    assert!(!text(&out).contains("S3cr3t-pw"), "{}", text(&out));
    says(&out, &format!("{shown}/ks.cfg"));
    // Nor an error about that URL.
    let out = boot(
        &root,
        &format!("ks={authed}/missing.cfg"),
        &["--media", &authed],
    );
    code(&out, 1);
    assert!(!text(&out).contains("S3cr3t-pw"), "{}", text(&out));
    says(&out, &format!("{shown}/missing.cfg: HTTP 404"));
}

/// `ksinstall report serve` on 127.0.0.1, started as an operator would; killed when dropped.
struct Receiver(std::process::Child, String);

impl Receiver {
    fn start(dir: &Path) -> Receiver {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_ksinstall"))
            .args(["report", "serve", "--listen", "127.0.0.1:0", "--dir"])
            .arg(dir)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // "listening on http://127.0.0.1:PORT/<host>, storing into DIR"
        let url = first
            .split_whitespace()
            .nth(2)
            .unwrap()
            .trim_end_matches("/<host>,")
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{first}");
        Receiver(child, url)
    }
    /// Stop it and return what it logged.
    fn stop(&mut self) -> String {
        use std::io::Read;
        let _ = self.0.kill();
        let _ = self.0.wait();
        let mut err = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }
}

/// A failed assertion must not leave the server running (it would hold the test's files).
impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_rollouts_reports_reach_the_receiver_and_cluster_check_names_the_failed_host() {
    let s = pxe_setup();
    let root = s.copy_fixture("plain");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/ks.cfg"), ks_text("")).unwrap();
    // A root password ESXi refuses: the kickstart is invalid, nothing is written.
    std::fs::write(
        root.join("etc/broken.cfg"),
        ks_text("").replace(&format!("rootpw '{PASSWORD}'"), "rootpw x"),
    )
    .unwrap();
    let store = tempfile::tempdir().unwrap();
    let mut rx = Receiver::start(store.path());
    let host = |name: &str, ks: &str, disk: &str| {
        let report = s.path(&format!("{name}.report.json"));
        boot(
            &root,
            ks,
            &[
                "--media",
                &s.media(),
                "--disk",
                disk,
                "--disk-size",
                "40G",
                "--report",
                report.to_str().unwrap(),
                "--report-url",
                &format!("{}/{name}", rx.1),
            ],
        )
    };
    let good = host("esx-01", "ks=file:///etc/ks.cfg", &s.disk());
    code(&good, 0);
    let broken_disk = s.path("broken.img");
    std::fs::File::create(&broken_disk)
        .unwrap()
        .set_len(40_000_000_000)
        .unwrap();
    let bad = host(
        "esx-03",
        "ks=file:///etc/broken.cfg",
        broken_disk.to_str().unwrap(),
    );
    assert_ne!(bad.status.code(), Some(0), "{}", text(&bad));
    let logged = rx.stop();
    // Each host's report, byte for byte what it wrote with --report, as JSON.
    for name in ["esx-01", "esx-03"] {
        let stored: serde_json::Value = serde_json::from_slice(
            &std::fs::read(store.path().join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(s.path(&format!("{name}.report.json"))).unwrap())
                .unwrap();
        assert_eq!(stored, written, "{name}");
        let events =
            std::fs::read_to_string(store.path().join(format!("{name}.events.jsonl"))).unwrap();
        assert!(
            events.lines().last().unwrap().contains("\"finished\""),
            "{events}"
        );
    }
    assert!(
        logged.contains("esx-03: failed at "),
        "the receiver names the failed host: {logged}"
    );
    // cluster check over the directory: the broken host, its step and its reason.
    let out = ksinstall(&[
        "cluster",
        "check",
        "--format",
        "json",
        store.path().join("esx-01.json").to_str().unwrap(),
        store.path().join("esx-03.json").to_str().unwrap(),
    ]);
    code(&out, 12);
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&serde_json::Value> = verdict["verdict"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "install_succeeded")
        .collect();
    assert_eq!(failed.len(), 1, "{verdict}");
    assert_eq!(failed[0]["host"], "esx-03");
    let msg = failed[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("kickstart") && msg.contains("broken.cfg") && msg.contains("has errors"),
        "{msg}"
    );
    // Nothing was written to the broken host's disk: the sparse file has no block.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&broken_disk).unwrap().blocks(), 0);
}

/// GRUB's own checker accepts `dir/cfg` (the file is shown when it does not).
fn grub_script_check(dir: &Path, cfg: &str) {
    let path = dir.join(cfg);
    let (ok, o, e) = run("grub-script-check", &[path.to_str().unwrap()]);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(ok, "grub-script-check {cfg}: {o}{e}\n{text}");
}

/// Every mode of `boot` ends through the same session: the console (no `ks=`) writes `--report`
/// when it stops, a bad command line is tagged `source` as in `install`, and the JSON stream
/// carries the kickstart's findings and the scripts' output as events.
#[test]
fn every_mode_writes_its_report_and_says_the_same_step() {
    let s = pxe_setup();
    let root = s.copy_fixture("plain");
    let media = s.media();
    let report = s.path("console-report.json");
    let out = boot(
        &root,
        "runweasel",
        &["--media", &media, "--report", report.to_str().unwrap()],
    );
    code(&out, 1);
    says(
        &out,
        "ksinstall: error: the console install needs a terminal",
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("the console's report")).unwrap();
    assert_eq!(r["exit_code"], 1, "{r}");
    assert_eq!(r["outcome"], "UsageOrIo", "{r}");
    assert_eq!(r["document"], "install-report", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs a terminal"),
        "{r}"
    );

    // The same bad boot option, through `boot` and through `install`: exit 3, step `source`.
    let ks = s.path("ks.cfg");
    std::fs::write(&ks, ks_text("")).unwrap();
    for (cmd, report) in [("boot", "boot-bad.json"), ("install", "install-bad.json")] {
        let report = s.path(report);
        let mut args = vec![
            cmd,
            "--sysroot",
            root.to_str().unwrap(),
            "--cmdline",
            "ks=uuid:1234",
            "--report",
            report.to_str().unwrap(),
        ];
        if cmd == "install" {
            args.extend(["--ks", ks.to_str().unwrap(), "--media", &media]);
        }
        let out = ksinstall(&args);
        code(&out, 3);
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert_eq!(r["error"]["step"], "source", "{cmd}: {r}");
    }

    // --progress json: a finding and a %pre script's lines are events on stdout too.
    std::fs::write(
        &ks,
        ks_text("bogusoption\n%pre --interpreter=busybox\necho from-pre\n"),
    )
    .unwrap();
    let out = ksinstall(&[
        "install",
        "--sysroot",
        root.to_str().unwrap(),
        "--cmdline",
        "",
        "--ks",
        ks.to_str().unwrap(),
        "--media",
        &media,
        "--dry-run",
        "--run-pre",
        "--progress",
        "json",
    ]);
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(kinds.contains(&"diagnostic"), "{kinds:?}\n{}", text(&out));
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "script_output" && e["line"] == "from-pre"),
        "{}",
        text(&out)
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "script_ended" && e["ok"] == true),
        "{}",
        text(&out)
    );
    // ... and on stderr, as before.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("%pre ") && l.ends_with("ks.cfg:6:1: from-pre")),
        "{stderr}"
    );
    assert!(
        stderr.contains("ks.cfg:5:1: warning: unknown command"),
        "{stderr}"
    );
}
