//! `%include` URLs, fetched through the installer's one HTTP client (`crate::http`), so they get
//! the same certificates, timeouts and retries as the kickstart and the media.

use crate::http::Http;
use crate::kickstart::{FsLoader, IncludeLoader, IncludeTarget, Loaded};

/// Includes as the installer reads them: files through `FsLoader`, URLs fetched now.
pub(crate) struct InstallLoader {
    pub files: FsLoader,
    pub http: Http,
}

impl IncludeLoader for InstallLoader {
    fn load(&mut self, target: &IncludeTarget) -> Loaded {
        match target {
            IncludeTarget::Url(url)
                if url.starts_with("http://") || url.starts_with("https://") =>
            {
                match self.http.get_small(url) {
                    Ok(bytes) => Loaded::File {
                        name: crate::http::redact(url),
                        key: url.clone(),
                        bytes,
                    },
                    Err(e) => Loaded::Failed(format!("{e:#}")),
                }
            }
            IncludeTarget::Url(url) => Loaded::Failed(format!(
                "{}: only http:// and https:// includes are supported (see docs/BOOT.md)",
                crate::http::redact(url)
            )),
            other => self.files.load(other),
        }
    }
}
