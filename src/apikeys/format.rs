//! The API-key and SDK-token format: prefix + 30 base62 characters from
//! the OS CSPRNG (≈178 bits) + a 6-character base62 CRC32 of everything
//! before it, so a mangled key (or one whose `test`/`live` was edited) is
//! refused before any database lookup; and the HMAC fingerprint the
//! database keeps instead of the key.

use crate::crypto::{MasterKey, random_base62};
use crate::domain::{KeyType, Mode};

pub const RANDOM_LEN: usize = 30;
pub const CHECKSUM_LEN: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A key type's letters in the key itself.
fn letters(key_type: KeyType) -> &'static str {
    match key_type {
        KeyType::Secret => "sk",
        KeyType::Restricted => "rk",
    }
}

fn base62_u32(mut n: u32) -> String {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn checksum(body: &str) -> String {
    base62_u32(crc32fast::hash(body.as_bytes()))
}

/// Why a presented key was refused before any lookup; `Display` is the
/// message for the caller and never repeats the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the API key is empty")]
    Empty,
    #[error("the API key has surrounding whitespace or a trailing newline; send it without them")]
    Whitespace,
    #[error("the API key is wrapped in quotes; send it without them")]
    Quoted,
    #[error("the API key does not start with sk_test_, sk_live_, rk_test_ or rk_live_")]
    Prefix,
    #[error("the API key has the wrong length or characters; it may be truncated")]
    Shape,
    #[error("the API key's checksum does not match: a character was changed or mistyped")]
    Checksum,
}

/// A key that passed the offline checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    pub key_type: KeyType,
    pub mode: Mode,
}

/// Checks a presented key without touching the database.
pub fn parse(raw: &str) -> Result<ParsedKey, Malformed> {
    if raw.is_empty() {
        return Err(Malformed::Empty);
    }
    if raw.trim() != raw {
        return Err(Malformed::Whitespace);
    }
    if raw.starts_with(['"', '\'']) || raw.ends_with(['"', '\'']) {
        return Err(Malformed::Quoted);
    }
    let (key_type, mode, rest) = [
        (KeyType::Secret, Mode::Test, "sk_test_"),
        (KeyType::Secret, Mode::Live, "sk_live_"),
        (KeyType::Restricted, Mode::Test, "rk_test_"),
        (KeyType::Restricted, Mode::Live, "rk_live_"),
    ]
    .into_iter()
    .find_map(|(t, m, p)| raw.strip_prefix(p).map(|rest| (t, m, rest)))
    .ok_or(Malformed::Prefix)?;
    if rest.len() != RANDOM_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Malformed::Shape);
    }
    let (body, sum) = raw.split_at(raw.len() - CHECKSUM_LEN);
    if checksum(body) != sum {
        return Err(Malformed::Checksum);
    }
    Ok(ParsedKey { key_type, mode })
}

/// A publishable SDK token: `sdk_test_`/`sdk_live_`, with the same random
/// part and checksum as keys.
pub fn generate_sdk_token(mode: Mode) -> String {
    let body = format!("sdk_{}_{}", mode.as_str(), random_base62(RANDOM_LEN));
    format!("{body}{}", checksum(&body))
}

/// The mode of a well-formed SDK token.
pub fn parse_sdk_token(raw: &str) -> Option<Mode> {
    let (mode, rest) = match raw.strip_prefix("sdk_test_") {
        Some(rest) => (Mode::Test, rest),
        None => (Mode::Live, raw.strip_prefix("sdk_live_")?),
    };
    if rest.len() != RANDOM_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (body, sum) = raw.split_at(raw.len() - CHECKSUM_LEN);
    (checksum(body) == sum).then_some(mode)
}

/// A new raw key of `key_type` and `mode`.
pub fn generate(key_type: KeyType, mode: Mode) -> (String, String) {
    let prefix = format!("{}_{}_", letters(key_type), mode.as_str());
    let body = format!("{prefix}{}", random_base62(RANDOM_LEN));
    let key = format!("{body}{}", checksum(&body));
    (prefix, key)
}

/// HMAC-SHA256 of a key under a key derived from the master key, in hex.
pub fn fingerprint(master: &MasterKey, key: &str) -> String {
    crate::crypto::hex(&master.mac("tessera api key v1", key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_mangling_is_caught_offline() {
        for (t, m, p) in [
            (KeyType::Secret, Mode::Test, "sk_test_"),
            (KeyType::Secret, Mode::Live, "sk_live_"),
            (KeyType::Restricted, Mode::Test, "rk_test_"),
            (KeyType::Restricted, Mode::Live, "rk_live_"),
        ] {
            let (prefix, key) = generate(t, m);
            assert_eq!(prefix, p);
            assert_eq!(key.len(), p.len() + RANDOM_LEN + CHECKSUM_LEN);
            assert_eq!(parse(&key), Ok(ParsedKey { key_type: t, mode: m }));
        }
        let (_, key) = generate(KeyType::Secret, Mode::Live);
        // Every single-character change in the random part is caught.
        let bytes = key.as_bytes();
        for i in 8..8 + RANDOM_LEN {
            let mut changed = bytes.to_vec();
            changed[i] = if changed[i] == b'a' { b'b' } else { b'a' };
            assert_eq!(parse(std::str::from_utf8(&changed).unwrap()), Err(Malformed::Checksum), "position {i}");
        }
        assert_eq!(parse(&key.replacen("live", "test", 1)), Err(Malformed::Checksum));
        assert_eq!(parse(&format!("{key}\n")), Err(Malformed::Whitespace));
        assert_eq!(parse(&format!(" {key}")), Err(Malformed::Whitespace));
        assert_eq!(parse(&format!("\"{key}\"")), Err(Malformed::Quoted));
        assert_eq!(parse("pk_live_abc"), Err(Malformed::Prefix));
        assert_eq!(parse(&key[..key.len() - 1]), Err(Malformed::Shape));
        assert_eq!(parse(""), Err(Malformed::Empty));
        assert!(!Malformed::Checksum.to_string().contains(&key));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        fn kind() -> impl Strategy<Value = (KeyType, Mode)> {
            prop_oneof![
                Just((KeyType::Secret, Mode::Test)),
                Just((KeyType::Secret, Mode::Live)),
                Just((KeyType::Restricted, Mode::Test)),
                Just((KeyType::Restricted, Mode::Live)),
            ]
        }

        proptest! {
            #[test]
            fn parsing_any_string_never_panics(raw in "\\PC{0,80}") {
                let _ = parse(&raw);
                let _ = parse_sdk_token(&raw);
            }

            #[test]
            fn generated_keys_parse_back_and_any_edit_is_caught((t, m) in kind(), at in 0usize..44, c in "[0-9A-Za-z_]") {
                let (_, key) = generate(t, m);
                prop_assert_eq!(parse(&key), Ok(ParsedKey { key_type: t, mode: m }));
                let mut edited = key.clone().into_bytes();
                let at = at % edited.len();
                edited[at] = c.as_bytes()[0];
                let edited = String::from_utf8(edited).unwrap();
                if edited != key {
                    prop_assert!(parse(&edited).is_err(), "{edited} parsed");
                }
            }
        }
    }
}
