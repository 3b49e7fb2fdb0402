//! Randomness, fingerprints, constant-time comparison and the master key.
//!
//! Every server-generated secret comes from the OS CSPRNG through
//! `random_base62`; secrets are stored as SHA-256 fingerprints, never raw.

use std::fmt;
use std::io::Write;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters of base62 needed for at least 256 bits of entropy
/// (43 × log2(62) ≈ 256.03).
pub const SECRET_LEN_256_BITS: usize = 43;

/// Fills `buf` from the OS CSPRNG. Failure of the OS generator is not
/// something a server can work around, so it aborts the request loudly.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// `len` characters of base62, each uniform (rejection sampling, no bias).
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf);
        for &b in &buf {
            // 248 = 4 × 62: bytes at or above it would bias the first symbols.
            if b < 248 {
                out.push(BASE62[(b % 62) as usize] as char);
                if out.len() == len {
                    break;
                }
            }
        }
    }
    out
}

/// A public identifier: a type prefix and 24 base62 characters (≈143 bits),
/// e.g. `usr_3kT…`.
pub fn public_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_base62(24))
}

/// Hex SHA-256 of a high-entropy secret: what the database keeps instead of
/// the secret, and what lookups go by.
pub fn fingerprint(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// A strong HTTP entity tag for `body`: 128 bits of its SHA-256.
pub fn etag_of(body: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    format!("\"{}\"", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]))
}

/// Equality whose running time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// A string that must never be printed: `Debug` and `Display` say
/// `[redacted]`; `expose` is the one way to the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The 256-bit key under which everything secret at rest is encrypted.
#[derive(Clone)]
pub struct MasterKey([u8; 32], std::sync::Arc<[(&'static str, aws_lc_rs::hmac::Key); 3]>);

/// The purposes `MasterKey::mac` is asked for on hot paths: their derived
/// keys are made once.
const MAC_PURPOSES: [&str; 3] = ["tessera api key v1", "tessera csrf v1", "tessera sid v1"];

fn derive_mac_key(key: &[u8; 32], purpose: &str) -> aws_lc_rs::hmac::Key {
    use aws_lc_rs::hmac;
    let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), purpose.as_bytes());
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MasterKeyError {
    #[error("must be 32 bytes written as 64 hex characters or as base64")]
    Malformed,
    #[error("cannot read or create {path}: {reason}")]
    File { path: String, reason: String },
}

impl MasterKey {
    /// Parses 64 hex characters, or base64 (standard or URL-safe, padded or
    /// not) of exactly 32 bytes.
    pub fn parse(text: &str) -> Result<Self, MasterKeyError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| MasterKeyError::Malformed)?
        } else {
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE,
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            engines.iter().find_map(|e| e.decode(text).ok()).ok_or(MasterKeyError::Malformed)?
        };
        let key: [u8; 32] = bytes.try_into().map_err(|_| MasterKeyError::Malformed)?;
        Ok(Self::from_bytes(key))
    }

    fn from_bytes(key: [u8; 32]) -> Self {
        let macs = MAC_PURPOSES.map(|purpose| (purpose, derive_mac_key(&key, purpose)));
        Self(key, std::sync::Arc::new(macs))
    }

    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        fill_random(&mut key);
        Self::from_bytes(key)
    }

    fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// Reads the key file, or creates it (mode 0600, written atomically so a
    /// crash never leaves half a key) when it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Self, MasterKeyError> {
        let file_error = |reason: String| MasterKeyError::File { path: path.display().to_string(), reason };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|e| file_error(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Written whole under a name of its own, then linked into
                // place only if no other process got there first: two
                // first starts on one key file agree on one key.
                let key = Self::generate();
                let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(format!(".tmp-{}-{}", std::process::id(), random_base62(8)));
                let tmp = path.with_file_name(name);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                let written = options.open(&tmp).and_then(|mut file| {
                    writeln!(file, "{}", key.to_base64())?;
                    file.sync_all()
                });
                let linked = written.and_then(|()| match std::fs::hard_link(&tmp, path) {
                    // A file system without hard links (FAT, some FUSE
                    // mounts): the rename of before, which two first
                    // starts at once could race.
                    Err(e) if !matches!(e.kind(), std::io::ErrorKind::AlreadyExists) && !path.exists() => {
                        std::fs::rename(&tmp, path)
                    }
                    other => other,
                });
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => {
                        // The new name survives a power cut only once its
                        // directory is on disk.
                        #[cfg(unix)]
                        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
                        }
                        Ok(key)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
                        Self::parse(&text).map_err(|e| file_error(e.to_string()))
                    }
                    Err(e) => Err(file_error(e.to_string())),
                }
            }
            Err(e) => Err(file_error(e.to_string())),
        }
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// HMAC-SHA256 of `data` under a key derived from this one for
    /// `purpose` (e.g. `tessera csrf v1`), so each use has its own key.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        use aws_lc_rs::hmac;
        let tag = match self.1.iter().find(|(p, _)| *p == purpose) {
            Some((_, key)) => hmac::sign(key, data),
            None => hmac::sign(&derive_mac_key(&self.0, purpose), data),
        };
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Encrypts `plaintext` with AES-256-GCM under this key. `context` is
    /// bound as associated data (e.g. `signing_key:<kid>`), so a sealed
    /// value copied onto another row does not open. Output: base64 of
    /// nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut out = plaintext.to_vec();
        self.aead()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut out)
            .expect("AES-256-GCM sealing cannot fail for in-memory buffers");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&out);
        base64::engine::general_purpose::STANDARD.encode(sealed)
    }

    /// Reverses `seal`; fails for another key, another context, or a
    /// tampered value.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let raw = base64::engine::general_purpose::STANDARD.decode(sealed).map_err(|_| SealError)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
        let mut buf = ciphertext.to_vec();
        let plain = self.aead().open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf).map_err(|_| SealError)?;
        Ok(plain.to_vec())
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("a 32-byte AES-256 key"))
    }
}

/// A sealed value did not open: wrong master key, wrong context, or tampered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a sealed value did not open under the master key (was the master key changed?)")]
pub struct SealError;

/// A CSRF token bound to a session and to one purpose (the parameters of
/// an authorization request, "logout", "dashboard"): HMAC-SHA256 under a
/// key derived from the master key.
pub fn csrf_token(master: &MasterKey, session_id: &str, purpose: &str) -> String {
    use base64::Engine;
    let tag = master.mac("tessera csrf v1", format!("{session_id}\n{purpose}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_has_the_asked_length_and_alphabet() {
        let s = random_base62(SECRET_LEN_256_BITS);
        assert_eq!(s.len(), 43);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(s, random_base62(SECRET_LEN_256_BITS));
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        assert_eq!(fingerprint("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    /// Many first starts at once on one key file (a fleet on shared
    /// storage, or the CLI beside a starting server): one key for all.
    #[test]
    fn first_starts_at_once_agree_on_one_master_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("master-key");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let keys: Vec<[u8; 32]> = (0..8)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        *MasterKey::load_or_create(&path).unwrap().as_bytes()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect();
            assert!(keys.iter().all(|k| k == &keys[0]), "the starts disagree on the key");
            assert_eq!(MasterKey::load_or_create(&path).unwrap().as_bytes(), &keys[0], "and the file holds it");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
        }
    }

    #[test]
    fn master_key_accepts_hex_and_base64_of_32_bytes_only() {
        let hex = "00".repeat(32);
        assert!(MasterKey::parse(&hex).is_ok());
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(MasterKey::parse(&b64).unwrap().as_bytes(), &[7u8; 32]);
        assert_eq!(MasterKey::parse("short").unwrap_err(), MasterKeyError::Malformed);
        let b64_31 = base64::engine::general_purpose::STANDARD.encode([7u8; 31]);
        assert_eq!(MasterKey::parse(&b64_31).unwrap_err(), MasterKeyError::Malformed);
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let key = MasterKey::generate();
        let sealed = key.seal("signing_key:a", b"private");
        assert_eq!(key.open("signing_key:a", &sealed).unwrap(), b"private");
        assert_ne!(sealed, key.seal("signing_key:a", b"private"), "a fresh nonce each time");
        assert_eq!(key.open("signing_key:b", &sealed), Err(SealError));
        assert_eq!(MasterKey::generate().open("signing_key:a", &sealed), Err(SealError));
        let mut tampered = base64::engine::general_purpose::STANDARD.decode(&sealed).unwrap();
        *tampered.last_mut().unwrap() ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(tampered);
        assert_eq!(key.open("signing_key:a", &tampered), Err(SealError));
        assert_eq!(key.open("signing_key:a", "not base64!"), Err(SealError));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert!(!format!("{:?}", MasterKey::generate()).contains('='));
    }
}

#[cfg(test)]
mod hex_tests {
    use proptest::prelude::*;

    #[test]
    fn macs_with_remembered_keys_are_the_two_step_hmac() {
        use aws_lc_rs::hmac;
        let master = super::MasterKey::generate();
        for purpose in super::MAC_PURPOSES.into_iter().chain(["another purpose"]) {
            let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, master.as_bytes()), purpose.as_bytes());
            let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()), b"data");
            assert_eq!(master.mac(purpose, b"data").as_slice(), expected.as_ref(), "{purpose}");
        }
    }

    proptest! {
        #[test]
        fn hex_is_two_lowercase_digits_per_byte(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(super::hex(&bytes), expected);
        }
    }
}
