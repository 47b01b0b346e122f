//! Fetching small files (kickstarts, `%include` URLs) over HTTP(S) with `ureq`: certificates
//! checked, timeouts, a size limit, and a few retries with backoff.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::kickstart::{FsLoader, IncludeLoader, IncludeTarget, Loaded};

/// Kickstarts are small; refuse anything larger rather than fill memory.
const MAX_BYTES: u64 = 4 << 20;
const ATTEMPTS: u32 = 4;

pub fn get(url: &str) -> Result<Vec<u8>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(true)
        .build()
        .into();
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(250 << attempt));
        }
        match agent.get(url).call() {
            Ok(resp) => {
                let mut bytes = Vec::new();
                resp.into_body()
                    .into_reader()
                    .take(MAX_BYTES + 1)
                    .read_to_end(&mut bytes)
                    .with_context(|| format!("reading {url}"))?;
                anyhow::ensure!(
                    bytes.len() as u64 <= MAX_BYTES,
                    "{url}: larger than {MAX_BYTES} bytes"
                );
                return Ok(bytes);
            }
            // A 4xx will not get better by asking again.
            Err(ureq::Error::StatusCode(code)) if (400..500).contains(&code) => {
                anyhow::bail!("{url}: HTTP {code}")
            }
            Err(e) => {
                log::warn!("{url}: attempt {} of {ATTEMPTS}: {e}", attempt + 1);
                last = Some(e);
            }
        }
    }
    Err(anyhow::anyhow!(
        "{url}: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Includes as the installer reads them: files through `FsLoader`, URLs fetched now.
pub struct InstallLoader {
    pub files: FsLoader,
}

impl IncludeLoader for InstallLoader {
    fn load(&mut self, target: &IncludeTarget) -> Loaded {
        match target {
            IncludeTarget::Url(url) => match get(url) {
                Ok(bytes) => Loaded::File {
                    name: url.clone(),
                    key: url.clone(),
                    bytes,
                },
                Err(e) => Loaded::Failed(format!("{e:#}")),
            },
            other => self.files.load(other),
        }
    }
}
