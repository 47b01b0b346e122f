//! VMware's descriptor signatures: `vibs/X.xml.sig`, a PEM PKCS#7 (CMS SignedData) detached
//! signature over `vibs/X.xml.orig` (../shared/spec/media.md §2). Parsed with RustCrypto's `cms`
//! and `x509-cert`; the RSA checks are ring's. No ASN.1 is decoded by hand here.
//!
//! What is verified, and against what: the trust anchor is a certificate the user gives
//! (`--trust-cert`), since VMware's 8.x signing certificate is not public. A signature is good when
//! its signer is that certificate, or a certificate the anchor signed; the signed attributes'
//! message digest is the SHA-256 of `.xml.orig`; the signature over them verifies with the
//! signer's key; and `.xml.orig` describes the same payloads as the `.xml` the install uses.
//! Validity dates are not checked (VMware's 6.7 certificate expired in 2019; its images did not).

use std::path::Path;

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use super::imgdb::{self, ImageDb};

const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA1_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");

/// The certificate signatures are checked against.
pub struct Anchor {
    cert: Certificate,
    /// Where it came from, for the plan and the report.
    pub label: String,
}

/// A descriptor whose signature does not hold, and why.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{member}: {reason}")]
pub struct SignatureError {
    pub member: String,
    pub reason: SignatureProblem,
}

/// Why a descriptor's signature does not hold. Names and values are those of the signature and
/// its certificates; the descriptor is [`SignatureError::member`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SignatureProblem {
    #[error("has a .xml.sig but no .xml.orig (the signed bytes)")]
    NoSignedBytes,
    /// `.xml.orig` is not a descriptor.
    #[error("{0}")]
    SignedDescriptor(imgdb::ImgDbError),
    #[error("a signature for a descriptor the image does not have")]
    NoSuchDescriptor,
    #[error("the signed descriptor (.xml.orig) differs from the one in use: VIB {vib} payloads do not match")]
    OrigDiffers { vib: String },
    #[error("PEM: {0}")]
    Pem(String),
    #[error("a PEM {0}, not a PKCS7 signature")]
    PemLabel(String),
    #[error("not PKCS#7: {0}")]
    NotPkcs7(String),
    #[error("PKCS#7 {0}, not signed data")]
    NotSignedData(String),
    #[error("PKCS#7 signed data: {0}")]
    SignedData(String),
    #[error("{0} signers; one was expected")]
    SignerCount(usize),
    #[error("digest {0}, not SHA-256")]
    Digest(String),
    #[error("the signed attributes have no message digest")]
    NoMessageDigest,
    #[error("message digest: {0}")]
    MessageDigest(String),
    #[error("the signed message digest is not the SHA-256 of .xml.orig")]
    DigestMismatch,
    /// The signed attributes could not be encoded again (DER) to check the signature over them.
    #[error("{0}")]
    Encoding(String),
    #[error("signature algorithm {0}, not RSA")]
    SignatureAlgorithm(String),
    #[error("the signature does not verify with the signer's key")]
    BadSignature,
    #[error("the signer is named by key id; only issuer and serial are supported")]
    SignerByKeyId,
    #[error("signed by {issuer} serial {serial}, which is neither the trust certificate nor carried in the signature")]
    SignerUnknown { issuer: String, serial: String },
    #[error("signed by {subject}, issued by {issuer}: not the trust certificate {anchor}")]
    NotIssuedByAnchor {
        subject: String,
        issuer: String,
        anchor: String,
    },
    #[error("the signer's certificate is signed with {0}, not RSA")]
    CertAlgorithm(String),
    #[error("the signer's certificate signature is not whole bytes")]
    CertSignatureBits,
    #[error("the signer's certificate ({0}) is not signed by the trust certificate")]
    CertNotSignedByAnchor(String),
}

impl Anchor {
    /// Read a certificate file, PEM or DER.
    pub fn load(path: &Path) -> anyhow::Result<Anchor> {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("--trust-cert {}: {e}", path.display()))?;
        let cert = if bytes.starts_with(b"-----BEGIN") {
            use der::DecodePem;
            Certificate::from_pem(&bytes)
        } else {
            Certificate::from_der(&bytes)
        }
        .map_err(|e| {
            anyhow::anyhow!(
                "--trust-cert {}: not an X.509 certificate: {e}",
                path.display()
            )
        })?;
        Ok(Anchor {
            label: format!("{} ({})", path.display(), cert.tbs_certificate.subject),
            cert,
        })
    }
}

/// What a good check found: how many descriptors were signed and verified, how many carry no
/// signature, and who signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub verified: usize,
    pub unsigned: usize,
    pub signers: Vec<String>,
}

/// Check every signature the image carries against `anchor`. The first bad one is the error.
pub fn check(db: &ImageDb, anchor: &Anchor) -> Result<Checked, SignatureError> {
    let mut signers: Vec<String> = Vec::new();
    let mut verified = 0;
    for s in db.signatures.iter().filter(|s| s.sig.is_some()) {
        let bad = |reason: SignatureProblem| SignatureError {
            member: s.member.clone(),
            reason,
        };
        let (Some(sig), Some(orig)) = (&s.sig, &s.orig) else {
            return Err(bad(SignatureProblem::NoSignedBytes));
        };
        let signer = verify_detached(orig, sig, anchor).map_err(bad)?;
        same_payloads(db, &s.member, orig).map_err(bad)?;
        if !signers.contains(&signer) {
            signers.push(signer);
        }
        verified += 1;
    }
    let signed: Vec<&str> = db
        .signatures
        .iter()
        .filter(|s| s.sig.is_some())
        .map(|s| s.member.as_str())
        .collect();
    let unsigned = db
        .vibs
        .iter()
        .filter(|v| !signed.iter().any(|m| same_member(m, &v.member)))
        .count();
    Ok(Checked {
        verified,
        unsigned,
        signers,
    })
}

fn same_member(a: &str, b: &str) -> bool {
    a.rsplit('/').next() == b.rsplit('/').next()
}

/// `.xml.orig` is what VMware signed; the install reads `.xml`. They must describe the same VIB
/// with the same payloads (sizes, checksums), or the signature vouches for other bytes.
fn same_payloads(db: &ImageDb, member: &str, orig: &[u8]) -> Result<(), SignatureProblem> {
    let signed = imgdb::parse_vib(&format!("{member}.orig"), orig)
        .map_err(SignatureProblem::SignedDescriptor)?;
    let used = db
        .vibs
        .iter()
        .find(|v| same_member(&v.member, member))
        .ok_or(SignatureProblem::NoSuchDescriptor)?;
    if signed.id != used.id || signed.payloads != used.payloads {
        return Err(SignatureProblem::OrigDiffers {
            vib: used.id.clone(),
        });
    }
    Ok(())
}

/// Verify a PEM (or DER) PKCS#7 detached signature over `content`; returns the signer's name.
fn verify_detached(
    content: &[u8],
    sig: &[u8],
    anchor: &Anchor,
) -> Result<String, SignatureProblem> {
    let der = if sig.starts_with(b"-----BEGIN") {
        let (label, der) =
            der::pem::decode_vec(sig).map_err(|e| SignatureProblem::Pem(e.to_string()))?;
        if !matches!(label, "PKCS7" | "CMS") {
            return Err(SignatureProblem::PemLabel(label.to_string()));
        }
        der
    } else {
        sig.to_vec()
    };
    let ci = ContentInfo::from_der(&der).map_err(|e| SignatureProblem::NotPkcs7(e.to_string()))?;
    if ci.content_type != SIGNED_DATA {
        return Err(SignatureProblem::NotSignedData(ci.content_type.to_string()));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| SignatureProblem::SignedData(e.to_string()))?;
    let si = match sd.signer_infos.0.as_slice() {
        [one] => one,
        other => return Err(SignatureProblem::SignerCount(other.len())),
    };
    if si.digest_alg.oid != SHA256 {
        return Err(SignatureProblem::Digest(si.digest_alg.oid.to_string()));
    }
    let signer = signer_cert(&sd, si, anchor)?;
    let digest = Sha256::digest(content);
    let signed_bytes = match &si.signed_attrs {
        Some(attrs) => {
            let md = attrs
                .iter()
                .find(|a| a.oid == MESSAGE_DIGEST)
                .and_then(|a| a.values.get(0))
                .ok_or(SignatureProblem::NoMessageDigest)?
                .decode_as::<der::asn1::OctetString>()
                .map_err(|e| SignatureProblem::MessageDigest(e.to_string()))?;
            if md.as_bytes() != digest.as_slice() {
                return Err(SignatureProblem::DigestMismatch);
            }
            // RFC 5652 §5.4: the signature is over the DER of the SET OF attributes.
            attrs
                .to_der()
                .map_err(|e| SignatureProblem::Encoding(e.to_string()))?
        }
        None => content.to_vec(),
    };
    if !matches!(si.signature_algorithm.oid, o if o == RSA || o == SHA256_WITH_RSA) {
        return Err(SignatureProblem::SignatureAlgorithm(
            si.signature_algorithm.oid.to_string(),
        ));
    }
    rsa_verify(
        &signer,
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &signed_bytes,
        si.signature.as_bytes(),
    )
    .map_err(|_| SignatureProblem::BadSignature)?;
    Ok(signer.tbs_certificate.subject.to_string())
}

/// The signer's certificate: the anchor itself, or one in the signature that the anchor issued
/// and signed.
fn signer_cert(
    sd: &SignedData,
    si: &SignerInfo,
    anchor: &Anchor,
) -> Result<Certificate, SignatureProblem> {
    let SignerIdentifier::IssuerAndSerialNumber(id) = &si.sid else {
        return Err(SignatureProblem::SignerByKeyId);
    };
    let is_signer = |c: &Certificate| {
        c.tbs_certificate.issuer == id.issuer && c.tbs_certificate.serial_number == id.serial_number
    };
    if is_signer(&anchor.cert) {
        return Ok(anchor.cert.clone());
    }
    let carried = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .find_map(|c| match c {
            CertificateChoices::Certificate(c) if is_signer(c) => Some(c.clone()),
            _ => None,
        })
        .ok_or_else(|| SignatureProblem::SignerUnknown {
            issuer: id.issuer.to_string(),
            serial: id.serial_number.to_string(),
        })?;
    if carried.tbs_certificate.issuer != anchor.cert.tbs_certificate.subject {
        return Err(SignatureProblem::NotIssuedByAnchor {
            subject: carried.tbs_certificate.subject.to_string(),
            issuer: carried.tbs_certificate.issuer.to_string(),
            anchor: anchor.cert.tbs_certificate.subject.to_string(),
        });
    }
    let alg: &'static dyn ring::signature::VerificationAlgorithm = match carried
        .signature_algorithm
        .oid
    {
        o if o == SHA256_WITH_RSA => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        o if o == SHA1_WITH_RSA => &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        o => return Err(SignatureProblem::CertAlgorithm(o.to_string())),
    };
    let tbs = carried
        .tbs_certificate
        .to_der()
        .map_err(|e| SignatureProblem::Encoding(e.to_string()))?;
    let cert_sig = carried
        .signature
        .as_bytes()
        .ok_or(SignatureProblem::CertSignatureBits)?;
    rsa_verify(&anchor.cert, alg, &tbs, cert_sig).map_err(|_| {
        SignatureProblem::CertNotSignedByAnchor(carried.tbs_certificate.subject.to_string())
    })?;
    Ok(carried)
}

fn rsa_verify(
    key_of: &Certificate,
    alg: &'static dyn ring::signature::VerificationAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), ()> {
    let spki = &key_of.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != RSA {
        return Err(());
    }
    let key = spki.subject_public_key.as_bytes().ok_or(())?;
    ring::signature::UnparsedPublicKey::new(alg, key)
        .verify(message, signature)
        .map_err(|_| ())
}
