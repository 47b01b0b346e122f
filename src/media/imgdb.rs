//! VMware's own metadata on an ESXi installer ISO: `imgdb.tgz`, a gzip tar of the image database
//! (`profiles/<name><hash>`: the image profile; `vibs/<vib>-<hash>.xml`: one descriptor per VIB,
//! with `.xml.orig` and `.xml.sig` where VMware signed it). Formats: docs/MEDIA.md,
//! ../shared/spec/media.md §2; parsed here with quick-xml, tar and flate2.
//!
//! The profile maps each VIB's payload names to the 8.3 file names on the media
//! (`<payload payload-name="s">s.v00</payload>`); the descriptors give each payload's type, boot
//! order, size and checksums. Together they say, for every file of the image, which VIB covers it
//! and what its bytes must hash to.

use std::collections::HashMap;
use std::io::Read;

use quick_xml::events::Event;

/// Why `imgdb.tgz` cannot be used. Each names the member at fault.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ImgDbError {
    #[error("not a gzip tar archive: {0}")]
    Archive(String),
    #[error("{member}: {message}")]
    Xml { member: String, message: String },
    #[error("{member}: {error}")]
    Syntax { member: String, error: XmlError },
    #[error("{member}: unpacks to more than {limit} bytes")]
    TooLarge { member: String, limit: u64 },
    #[error("has no image profile (profiles/*)")]
    NoProfile,
    #[error("has {0} image profiles; an installer image has one")]
    ManyProfiles(usize),
    #[error("the image profile names VIB {0}, and no descriptor in vibs/ has that id")]
    UnknownVib(String),
    #[error("VIB {vib}: the image profile names payload {payload}, which its descriptor lacks")]
    UnknownPayload { vib: String, payload: String },
    #[error("VIB {vib}: payload {payload}: {message}")]
    BadPayload {
        vib: String,
        payload: String,
        message: String,
    },
}

/// One payload as a VIB descriptor states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub name: String,
    /// `boot`, `vgz`, `tgz`, `boot_loader_efi`, `boot_com32_bios`, ...
    pub kind: String,
    pub boot_order: Option<u32>,
    pub vfat_name: Option<String>,
    pub size: u64,
    /// Of the file as stored (gzip-compressed for boot/vgz/tgz): what a byte copy must match.
    pub sha256: Option<String>,
    /// Of the decompressed content (`verify-process="gunzip"`).
    pub sha256_gunzip: Option<String>,
}

/// A VIB descriptor (`vibs/*.xml`): the fields an installer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vib {
    /// `VMware_bootbank_esx-base_7.0.0-1.0.15843807`, as the profile names it.
    pub id: String,
    pub name: String,
    pub version: String,
    pub vendor: String,
    /// The archive member it was read from.
    pub member: String,
    pub payloads: Vec<Payload>,
}

/// The image profile: its name and, per VIB, payload name -> 8.3 file name, in profile order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub member: String,
    pub vibs: Vec<(String, Vec<(String, String)>)>,
}

/// A descriptor's signature as the image carries it: the signed bytes and the PKCS#7 signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signed {
    pub member: String,
    pub orig: Option<Vec<u8>>,
    pub sig: Option<Vec<u8>>,
}

/// A file of the image matched to the VIB payload that covers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covered {
    /// The 8.3 file name the profile gives (`s.v00`), lower case.
    pub file: String,
    pub vib: String,
    pub payload: Payload,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDb {
    pub profile: Profile,
    pub vibs: Vec<Vib>,
    pub signatures: Vec<Signed>,
}

/// Members larger than this are not metadata; the whole archive is capped too (a gzip bomb
/// must not take the installer's memory).
const MEMBER_LIMIT: u64 = 32 << 20;
const TOTAL_LIMIT: u64 = 256 << 20;

/// A minimal element tree: enough to walk VMware's small XML documents by name.
#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

impl Node {
    fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn text_of(&self, name: &str) -> Option<String> {
        self.child(name).map(|c| c.text.trim().to_string())
    }
}

/// Why a member is not well-formed XML (as far as this reader needs it to be).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("at byte {at}: {message}")]
    Syntax { at: u64, message: String },
    /// An attribute, a text or a character reference quick-xml could not decode.
    #[error("{0}")]
    Undecodable(String),
    #[error("unknown entity &{0};")]
    UnknownEntity(String),
    #[error("unbalanced elements")]
    Unbalanced,
    #[error("an end tag without a start")]
    EndWithoutStart,
    #[error("the document ends inside an element")]
    Unterminated,
    #[error("no root element")]
    NoRoot,
}

fn undecodable(e: impl std::fmt::Display) -> XmlError {
    XmlError::Undecodable(e.to_string())
}

fn parse_tree(bytes: &[u8]) -> Result<Node, XmlError> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut stack: Vec<Node> = vec![Node::default()];
    let element = |e: &quick_xml::events::BytesStart<'_>| -> Result<Node, XmlError> {
        let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(undecodable)?;
            let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(undecodable)?
                .into_owned();
            attrs.push((key, value));
        }
        Ok(Node {
            name,
            attrs,
            ..Node::default()
        })
    };
    loop {
        let event = reader.read_event().map_err(|e| XmlError::Syntax {
            at: reader.error_position(),
            message: e.to_string(),
        })?;
        let top = stack.last_mut().ok_or(XmlError::Unbalanced)?;
        match event {
            Event::Start(e) => {
                let node = element(&e)?;
                stack.push(node);
            }
            Event::Empty(e) => top.children.push(element(&e)?),
            Event::Text(t) => top.text.push_str(&t.xml10_content().map_err(undecodable)?),
            Event::CData(t) => top.text.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(undecodable)?;
                if let Some(c) = r.resolve_char_ref().map_err(undecodable)? {
                    top.text.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&name) {
                    top.text.push_str(s);
                } else {
                    return Err(XmlError::UnknownEntity(name.into_owned()));
                }
            }
            Event::End(_) => {
                let done = stack.pop().ok_or(XmlError::Unbalanced)?;
                stack
                    .last_mut()
                    .ok_or(XmlError::EndWithoutStart)?
                    .children
                    .push(done);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err(XmlError::Unterminated);
    }
    stack
        .pop()
        .and_then(|mut root| root.children.pop())
        .ok_or(XmlError::NoRoot)
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parse one VIB descriptor (`vibs/*.xml`).
pub fn parse_vib(member: &str, bytes: &[u8]) -> Result<Vib, ImgDbError> {
    let xml = |message: String| ImgDbError::Xml {
        member: member.to_string(),
        message,
    };
    let root = parse_tree(bytes).map_err(|error| ImgDbError::Syntax {
        member: member.to_string(),
        error,
    })?;
    if root.name != "vib" {
        return Err(xml(format!("<{}> where a <vib> was expected", root.name)));
    }
    let field = |name: &str| {
        root.text_of(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| xml(format!("the <vib> has no <{name}>")))
    };
    let (name, version, vendor, kind) = (
        field("name")?,
        field("version")?,
        field("vendor")?,
        field("type")?,
    );
    // The id ESXi's esximage builds and the image profile refers to.
    let id = format!("{vendor}_{kind}_{name}_{version}");
    let mut payloads = Vec::new();
    for p in root
        .child("payloads")
        .into_iter()
        .flat_map(|p| p.children("payload"))
    {
        payloads.push(parse_payload(&id, p)?);
    }
    Ok(Vib {
        id,
        name,
        version,
        vendor,
        member: member.to_string(),
        payloads,
    })
}

fn parse_payload(vib: &str, p: &Node) -> Result<Payload, ImgDbError> {
    let name = p.attr("name").unwrap_or_default().to_string();
    let bad = |message: String| ImgDbError::BadPayload {
        vib: vib.to_string(),
        payload: name.clone(),
        message,
    };
    if name.is_empty() {
        return Err(bad("has no name".into()));
    }
    let size = p
        .attr("size")
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| bad("has no size in bytes".into()))?;
    let boot_order = match p.attr("boot-order") {
        Some(v) => Some(
            v.parse::<u32>()
                .map_err(|_| bad(format!("boot-order \"{v}\" is not a number")))?,
        ),
        None => None,
    };
    let (mut sha256, mut sha256_gunzip) = (None, None);
    for c in p.children("checksum") {
        if c.attr("checksum-type") != Some("sha-256") {
            continue;
        }
        let hex = c.text.trim().to_ascii_lowercase();
        if !is_hex(&hex, 64) {
            return Err(bad(format!("a sha-256 that is not 64 hex digits: {hex}")));
        }
        // Other verify-processes (txt-mle: the TXT measurement) cover other bytes: not ours.
        match c.attr("verify-process") {
            None => sha256 = Some(hex),
            Some("gunzip") => sha256_gunzip = Some(hex),
            Some(_) => {}
        }
    }
    Ok(Payload {
        kind: p.attr("type").unwrap_or_default().to_string(),
        boot_order,
        vfat_name: p.attr("vfat-name").map(str::to_string),
        size,
        sha256,
        sha256_gunzip,
        name,
    })
}

/// Parse the image profile (`profiles/*`).
pub fn parse_profile(member: &str, bytes: &[u8]) -> Result<Profile, ImgDbError> {
    let xml = |message: String| ImgDbError::Xml {
        member: member.to_string(),
        message,
    };
    let root = parse_tree(bytes).map_err(|error| ImgDbError::Syntax {
        member: member.to_string(),
        error,
    })?;
    if root.name != "imageprofile" {
        return Err(xml(format!(
            "<{}> where an <imageprofile> was expected",
            root.name
        )));
    }
    let name = root
        .text_of("name")
        .ok_or_else(|| xml("the profile has no <name>".into()))?;
    let list = root
        .child("viblist")
        .ok_or_else(|| xml("the profile has no <viblist>".into()))?;
    let mut vibs = Vec::new();
    for v in list.children("vib") {
        let id = v
            .text_of("vib-id")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| xml("a <vib> without a <vib-id>".into()))?;
        let mut files = Vec::new();
        for p in v
            .child("payloads")
            .into_iter()
            .flat_map(|p| p.children("payload"))
        {
            let payload = p.attr("payload-name").unwrap_or_default().to_string();
            let file = p.text.trim().to_string();
            if payload.is_empty() || file.is_empty() {
                return Err(xml(format!("VIB {id}: a payload without a name or file")));
            }
            files.push((payload, file));
        }
        vibs.push((id, files));
    }
    Ok(Profile {
        name,
        member: member.to_string(),
        vibs,
    })
}

/// The directory (`profiles`, `vibs`, ...) and file name of a member, whatever it is under.
fn split_member(path: &str) -> Option<(&str, &str)> {
    let mut parts = path.trim_end_matches('/').rsplit('/');
    let file = parts.next()?;
    let dir = parts.next()?;
    Some((dir, file))
}

/// Read `imgdb.tgz` as the media carry it.
pub fn parse(tgz: &[u8]) -> Result<ImageDb, ImgDbError> {
    let archive_err = |e: std::io::Error| ImgDbError::Archive(e.to_string());
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let mut profiles = Vec::new();
    let mut vibs = Vec::new();
    let mut signed: HashMap<String, Signed> = HashMap::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(archive_err)? {
        let mut entry = entry.map_err(archive_err)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some((dir, file)) = split_member(&path) else {
            continue;
        };
        if !matches!(dir, "profiles" | "vibs") {
            continue; // bulletins, base images, reserved components: not needed to install
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(MEMBER_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(archive_err)?;
        total += bytes.len() as u64;
        if bytes.len() as u64 > MEMBER_LIMIT || total > TOTAL_LIMIT {
            return Err(ImgDbError::TooLarge {
                member: path,
                limit: MEMBER_LIMIT.min(TOTAL_LIMIT),
            });
        }
        if dir == "profiles" {
            profiles.push(parse_profile(&path, &bytes)?);
        } else if let Some(base) = file.strip_suffix(".xml.orig") {
            signed.entry(base.to_string()).or_default().orig = Some(bytes);
        } else if let Some(base) = file.strip_suffix(".xml.sig") {
            signed.entry(base.to_string()).or_default().sig = Some(bytes);
        } else if file.ends_with(".xml") {
            vibs.push(parse_vib(&path, &bytes)?);
        }
    }
    let profile = match profiles.len() {
        0 => return Err(ImgDbError::NoProfile),
        1 => profiles.remove(0),
        n => return Err(ImgDbError::ManyProfiles(n)),
    };
    let mut signatures: Vec<Signed> = signed
        .into_iter()
        .map(|(base, mut s)| {
            s.member = format!("vibs/{base}.xml");
            s
        })
        .collect();
    signatures.sort_by(|a, b| a.member.cmp(&b.member));
    Ok(ImageDb {
        profile,
        vibs,
        signatures,
    })
}

impl ImageDb {
    /// Every file of the profile matched to its VIB's payload, in profile order. A profile entry
    /// with no descriptor, or naming a payload its descriptor lacks, is an error: the image is
    /// then not the one its metadata describes.
    pub fn covered(&self) -> Result<Vec<Covered>, ImgDbError> {
        let by_id: HashMap<&str, &Vib> = self.vibs.iter().map(|v| (v.id.as_str(), v)).collect();
        let mut out = Vec::new();
        for (id, files) in &self.profile.vibs {
            let vib = by_id
                .get(id.as_str())
                .ok_or_else(|| ImgDbError::UnknownVib(id.clone()))?;
            for (payload, file) in files {
                let p = vib
                    .payloads
                    .iter()
                    .find(|p| &p.name == payload)
                    .ok_or_else(|| ImgDbError::UnknownPayload {
                        vib: id.clone(),
                        payload: payload.clone(),
                    })?;
                out.push(Covered {
                    file: file.to_ascii_lowercase(),
                    vib: id.clone(),
                    payload: p.clone(),
                });
            }
        }
        Ok(out)
    }

    /// The version of the image: that of its `esx-base` VIB (`7.0.0-1.0.15843807` -> `7.0.0`),
    /// which is what ESXi reports as its own version.
    pub fn version(&self) -> Option<String> {
        self.vibs
            .iter()
            .find(|v| v.name == "esx-base")
            .and_then(|v| v.version.split('-').next())
            .map(str::to_string)
    }
}

/// Whether a payload of this type is a boot module that goes to the boot bank.
pub(crate) fn is_bank_module(kind: &str) -> bool {
    matches!(kind, "boot" | "vgz" | "tgz")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_descriptor_names_the_member_and_what_is_wrong() {
        let e = parse_vib("vibs/a.xml", b"<vib><name>a</name>").unwrap_err();
        assert_eq!(
            e,
            ImgDbError::Syntax {
                member: "vibs/a.xml".into(),
                error: XmlError::Unterminated
            }
        );
        assert_eq!(
            e.to_string(),
            "vibs/a.xml: the document ends inside an element"
        );
        let e = parse_vib("vibs/b.xml", b"<vib>&nope;</vib>").unwrap_err();
        assert_eq!(e.to_string(), "vibs/b.xml: unknown entity &nope;");
        let e = parse_profile("profiles/p", b"").unwrap_err();
        assert_eq!(e.to_string(), "profiles/p: no root element");
    }
}
