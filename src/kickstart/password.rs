//! Root password rules: the forms `rootpw --iscrypted` accepts, the plain-password length and
//! character rules, ESXi's default password policy, and the SHA-512 crypt hash we store.
//! The plain password is only ever borrowed here; nothing in this module prints or keeps it.

/// Why a plain password is refused. The messages never contain the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Empty,
    /// Outside 7..=40 characters (spec §1.2).
    Length {
        chars: usize,
        looks_crypted: bool,
    },
    /// A character outside digits, ASCII letters, punctuation and space.
    Character {
        position: usize,
    },
    /// ESXi's `Security.PasswordQualityControl` default refuses it.
    Policy {
        classes: Vec<&'static str>,
        chars: usize,
    },
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::Empty => "rootpw needs a password".into(),
            Refusal::Length { chars, .. } => format!(
                "the root password is {chars} characters long; a plain password must have 7 to 40"
            ),
            Refusal::Character { position } => format!(
                "character {position} of the root password is not allowed: use digits, ASCII letters, punctuation and spaces"
            ),
            Refusal::Policy { classes, chars } => {
                let used = if classes.is_empty() {
                    "no character class".to_string()
                } else {
                    format!("{} character class{} ({})", classes.len(), if classes.len() == 1 { "" } else { "es" }, classes.join(", "))
                };
                format!(
                    "the root password does not meet ESXi's default password policy: it has {chars} characters and uses {used}; at least three of lowercase letters, uppercase letters, digits and other characters are needed, and at least 7 characters"
                )
            }
        }
    }

    pub fn help(&self) -> Option<String> {
        match self {
            Refusal::Empty => Some("write the password after the command: rootpw 'MyP@ssw0rd', or a crypt hash with rootpw --iscrypted".into()),
            Refusal::Length { looks_crypted: true, .. } => Some("this looks like a crypt hash: did you mean `rootpw --iscrypted`?".into()),
            Refusal::Policy { .. } => Some("an uppercase letter at the start and a digit at the end do not count as classes; mix in characters of a third class, e.g. digits inside or punctuation".into()),
            _ => None,
        }
    }
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || c.is_ascii_punctuation() || c == ' '
}

/// Check a plain password as ESXi's installer does: 7 to 40 characters from the allowed set,
/// then passwdqc with `min=disabled,disabled,disabled,7,7` (no one- or two-class passwords, no
/// pass phrases; three or four classes need at least 7 characters).
pub fn check_plain(pw: &str) -> Result<(), Refusal> {
    // The console checks its typed password here: the copy is wiped when it goes.
    let chars: zeroize::Zeroizing<Vec<char>> = zeroize::Zeroizing::new(pw.chars().collect());
    if chars.is_empty() {
        return Err(Refusal::Empty);
    }
    if let Some(i) = chars.iter().position(|c| !allowed(*c)) {
        return Err(Refusal::Character { position: i + 1 });
    }
    if !(7..=40).contains(&chars.len()) {
        return Err(Refusal::Length {
            chars: chars.len(),
            looks_crypted: crypt_form(pw).is_some() || pw.starts_with('$'),
        });
    }
    let lower = chars.iter().filter(|c| c.is_ascii_lowercase()).count();
    let mut upper = chars.iter().filter(|c| c.is_ascii_uppercase()).count();
    let mut digits = chars.iter().filter(|c| c.is_ascii_digit()).count();
    let other = chars.len() - lower - upper - digits;
    // passwdqc: an uppercase first letter and a digit at the end are how people usually meet
    // naive rules, so they do not count.
    if chars[0].is_ascii_uppercase() {
        upper -= 1;
    }
    if chars[chars.len() - 1].is_ascii_digit() {
        digits -= 1;
    }
    let classes: Vec<&'static str> = [
        (lower, "lowercase"),
        (upper, "uppercase"),
        (digits, "digits"),
        (other, "other"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(_, name)| *name)
    .collect();
    if classes.len() >= 3 && chars.len() >= 7 {
        Ok(())
    } else {
        Err(Refusal::Policy {
            classes,
            chars: chars.len(),
        })
    }
}

/// The crypt(3) forms `rootpw --iscrypted` accepts (spec §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CryptForm {
    Md5,
    Sha512,
    Des,
}

fn crypt_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
}

/// Which accepted crypt form `s` is, if any: MD5 `$1$` (`\$1\$[a-zA-Z0-9./$]{22,31}`), SHA-512
/// `$6$<salt of at most 16>$<86>`, or 13-character DES. `$6$rounds=` is not accepted: ESXi's
/// installer documents only the plain form (UNCONFIRMED; refusing is the safe side).
pub(crate) fn crypt_form(s: &str) -> Option<CryptForm> {
    if let Some(rest) = s.strip_prefix("$1$") {
        let ok = (22..=31).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"./$".contains(&b));
        return ok.then_some(CryptForm::Md5);
    }
    if let Some(rest) = s.strip_prefix("$6$") {
        let (salt, hash) = rest.split_once('$')?;
        let ok = !salt.is_empty()
            && salt.len() <= 16
            && crypt_chars(salt)
            && hash.len() == 86
            && crypt_chars(hash);
        return ok.then_some(CryptForm::Sha512);
    }
    (s.len() == 13 && crypt_chars(s)).then_some(CryptForm::Des)
}

/// SHA-512 crypt (`$6$`, 5000 rounds, 16-character salt) of a plain password, via `sha-crypt`.
pub fn sha512_crypt(pw: &str) -> anyhow::Result<String> {
    use sha_crypt::{Algorithm, CustomizedPasswordHasher, Params, ShaCrypt};
    let mut raw_salt = [0u8; 12]; // 12 bytes -> 16 crypt-base64 characters, the SHA-crypt maximum
    getrandom::fill(&mut raw_salt).map_err(|e| anyhow::anyhow!("no random salt: {e}"))?;
    let params = Params::new(Params::RECOMMENDED_ROUNDS).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash = ShaCrypt::new(Algorithm::Sha512Crypt, params)
        .hash_password_customized(pw.as_bytes(), &raw_salt, None, None, params)
        .map_err(|e| anyhow::anyhow!("hashing the root password failed: {e}"))?;
    // sha-crypt always writes `rounds=5000$`; 5000 is SHA-crypt's default, so dropping the field
    // gives the same hash in the classic `$6$salt$hash` form /etc/shadow and ESXi expect.
    let s = hash.as_str().replacen("$rounds=5000$", "$", 1);
    anyhow::ensure!(
        crypt_form(&s) == Some(CryptForm::Sha512),
        "unexpected SHA-512 crypt output form"
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_matches_the_esxi_guide_examples() {
        // VMware's 7.0 security guide: refused because the leading capital and trailing digit
        // do not count.
        assert!(matches!(
            check_plain("Xqat3hi"),
            Err(Refusal::Policy { .. })
        ));
        assert!(matches!(
            check_plain("xQaTEh2"),
            Err(Refusal::Policy { .. })
        ));
        assert_eq!(check_plain("xqaT3hi"), Ok(()));
        assert_eq!(check_plain("VMware1!"), Ok(()));
        assert_eq!(check_plain("VMware!"), Ok(()));
        assert!(
            matches!(check_plain("vagrant"), Err(Refusal::Policy { ref classes, .. }) if classes == &["lowercase"])
        );
        assert!(
            matches!(check_plain("<PASSWORD>"), Err(Refusal::Policy { ref classes, .. }) if classes.len() == 2)
        );
        assert!(matches!(
            check_plain("aB1!"),
            Err(Refusal::Length { chars: 4, .. })
        ));
        assert!(matches!(
            check_plain("pässWord1!"),
            Err(Refusal::Character { position: 2 })
        ));
        assert_eq!(check_plain(""), Err(Refusal::Empty));
    }

    #[test]
    fn crypt_forms() {
        assert_eq!(
            crypt_form("$1$DK/hzmaO$ZFEGEeAv3rNc8gqvhY2it1"),
            Some(CryptForm::Md5)
        );
        assert_eq!(crypt_form("abcdefghijklm"), Some(CryptForm::Des));
        assert_eq!(crypt_form("abcdefghijkl"), None);
        let h = format!("$6$saltsalt${}", "a".repeat(86));
        assert_eq!(crypt_form(&h), Some(CryptForm::Sha512));
        assert_eq!(
            crypt_form(&format!("$6$rounds=5000$salt${}", "a".repeat(86))),
            None
        );
        assert_eq!(crypt_form("$5$abc$def"), None);
    }

    #[test]
    fn hash_is_classic_sha512_crypt_and_never_the_password() {
        let h = sha512_crypt("VMware1!").unwrap();
        assert!(h.starts_with("$6$") && !h.contains("VMware1!"));
        assert_ne!(h, sha512_crypt("VMware1!").unwrap(), "salt must be random");
    }
}
