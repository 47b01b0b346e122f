//! The simulated BlueField as the product meets it: ksinstall's own rshim code (push, then
//! bfb-install's `CLEAR_ON_READ 1` and `DISPLAY_LEVEL 2`, then the log followed until our line)
//! against the simulator, which must behave as the rshim daemon does.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ksinstall::dpu::rshim;
use testkit::bundles::BLUEFIELD3;
use testkit::sim::{Config, RshimSim};

const MARKER: &str = "ksinstall payload abc run 1 installed";

/// A BF-Bundle, then `bf.cfg` with the hook, then a tar of one ESXio file: what
/// `bfb-install -b -c -f` sends.
fn stream(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let fw = dir.join("fw");
    BLUEFIELD3.write(&fw).unwrap();
    let mut bytes = std::fs::read(fw.join(BLUEFIELD3.file_name())).unwrap();
    bytes.extend_from_slice(
        format!(
            "KSINSTALL_PAYLOAD_LABEL=\"test\"\nbfb_post_install()\n{{\n\tbfrshlog \"INFO: {MARKER}\"\n}}\n"
        )
        .as_bytes(),
    );
    let esxio = b"the ESXio depot".to_vec();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(esxio.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "esxio/esxiodpt.tgz", &esxio[..])
        .unwrap();
    bytes.extend(tar.into_inner().unwrap());
    let path = dir.join("payload.bfb");
    std::fs::write(&path, &bytes).unwrap();
    (path, esxio)
}

#[test]
fn each_log_line_reaches_the_product_once_as_the_daemon_clears_its_log_on_read() {
    let t = tempfile::tempdir().unwrap();
    let dev = t.path().join("dev/rshim0");
    let mut config = Config::new("0000:ca:00.2", "BlueField-3(Rev 1)");
    config.old_log = vec!["INFO: Linux up".into()];
    let sim = RshimSim::start(&dev, config).unwrap();
    let (payload, esxio) = stream(t.path());

    rshim::misc_command(&dev, "DISPLAY_LEVEL 2").unwrap();
    let before = rshim::read_misc(&dev.join("misc")).unwrap();
    assert!(before.contains("INFO: Linux up"), "{before}");
    rshim::push(&dev, &payload, Duration::from_secs(20), &mut |_| {}).unwrap();
    rshim::misc_command(&dev, "CLEAR_ON_READ 1").unwrap();
    rshim::misc_command(&dev, "DISPLAY_LEVEL 2").unwrap();
    let cancel = AtomicBool::new(false);
    let mut shown = Vec::new();
    let (finish, _) = rshim::wait(
        rshim::Watch {
            dir: &dev,
            seen: vec!["INFO: Linux up".into()],
            marker: MARKER,
            silence: Duration::from_secs(20),
            poll: Duration::from_millis(50),
            cancel: &cancel,
        },
        &mut |l| shown.push(l.to_string()),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(finish, rshim::Finish::Confirmed(format!("INFO: {MARKER}")));
    // Every line once, in the card's order: none read twice, none lost, the old boot's not
    // taken for news.
    assert_eq!(
        shown,
        [
            "INFO: bf.cfg found",
            "INFO: Installing test",
            "INFO: Updating ATF/UEFI",
            "INFO: Updating NIC firmware",
            "INFO: Running bfb_post_install from bf.cfg",
            &format!("INFO: {MARKER}"),
        ]
    );
    let got = sim.finish();
    assert!(got.problems.is_empty(), "{:?}", got.problems);
    let ids: Vec<u8> = got.images.iter().map(|i| i.id).collect();
    assert_eq!(ids, [1, 3, 5, 41, 50, 63]);
    assert!(got.bf_cfg.contains("bfb_post_install()"), "{}", got.bf_cfg);
    assert!(!got.bf_cfg.contains("ustar"), "{}", got.bf_cfg);
    assert_eq!(
        got.esxio,
        [(
            "esxio/esxiodpt.tgz".to_string(),
            ksinstall::media::verify::sha256_hex(&esxio)
        )]
    );
    assert!(got.commands.iter().any(|c| c == "CLEAR_ON_READ 1"));
}

#[test]
fn without_clear_on_read_the_log_stays_for_every_reader() {
    let t = tempfile::tempdir().unwrap();
    let dev = t.path().join("dev/rshim0");
    let mut config = Config::new("0000:ca:00.2", "BlueField-3(Rev 1)");
    config.old_log = vec!["INFO: Linux up".into()];
    let sim = RshimSim::start(&dev, config).unwrap();
    for _ in 0..5 {
        let text = rshim::read_misc(&dev.join("misc")).unwrap();
        assert!(text.contains("INFO: Linux up"), "{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(sim);
}
