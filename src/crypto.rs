//! Secrets at rest: a keyring of AES-256-GCM data keys with ids, and sealing of secret values
//! bound to where they belong (associated data), plus random tokens and the `Secret` type.
//!
//! The keyring comes from `KEYHOLD_DATA_KEYS` / `KEYHOLD_DATA_KEY_ACTIVE` (see `config`).

pub mod password;

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// `n` bytes from the operating system's random source.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    bytes
}

/// A random token of 32 bytes, URL-safe base64 without padding.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(32))
}

/// Hex SHA-256 of `text`: how tokens are stored so the database never holds them.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The plaintext, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Data keys by id; new secrets are sealed with the active one, old ones still open.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(String, [u8; 32])>,
    active: usize,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(
            f,
            "Keyring {{ ids: {ids:?}, active: {} }}",
            self.active_id()
        )
    }
}

/// A sealed value: the id of the key that sealed it and `nonce || ciphertext`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

impl Keyring {
    /// Parses `id:base64,id:base64`; `active` names the key for new writes (default: the first).
    pub fn parse(text: &str, active: Option<&str>) -> anyhow::Result<Keyring> {
        let mut keys = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, encoded) = entry
                .split_once(':')
                .ok_or_else(|| anyhow!("each key must look like id:base64"))?;
            let id = id.trim();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                bail!("key id {id:?} must be letters, digits or -");
            }
            let bytes = BASE64
                .decode(encoded.trim())
                .map_err(|_| anyhow!("key {id} is not valid base64"))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow!("key {id} must be exactly 32 bytes"))?;
            if keys.iter().any(|(other, _)| other == id) {
                bail!("key id {id} appears twice");
            }
            keys.push((id.to_string(), key));
        }
        if keys.is_empty() {
            bail!("no data key given");
        }
        let active = match active {
            None => 0,
            Some(wanted) => keys
                .iter()
                .position(|(id, _)| id == wanted)
                .ok_or_else(|| anyhow!("active key {wanted} is not in the keyring"))?,
        };
        Ok(Keyring { keys, active })
    }

    /// The id new secrets are sealed with.
    pub fn active_id(&self) -> &str {
        &self.keys[self.active].0
    }

    fn cipher(&self, key_id: &str) -> anyhow::Result<Aes256Gcm> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(id, _)| id == key_id)
            .ok_or_else(|| anyhow!("data key {key_id} is not in the keyring"))?;
        Ok(Aes256Gcm::new(key.into()))
    }

    /// Seals `plaintext` under the active key; `context` (e.g. `org/7/credential/3/secret`)
    /// must be given again to open it, so a sealed value cannot be moved to another row.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> anyhow::Result<Sealed> {
        let key_id = self.active_id().to_string();
        let nonce_bytes = random_bytes(12);
        let ciphertext = self
            .cipher(&key_id)?
            .encrypt(
                Nonce::from_slice(&nonce_bytes),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| anyhow!("sealing failed"))?;
        let mut bytes = nonce_bytes;
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed { key_id, bytes })
    }

    /// Seals text for a single column: `<key id>:<base64 nonce || ciphertext>`.
    pub fn seal_text(&self, value: &str, context: &str) -> anyhow::Result<String> {
        let sealed = self.seal(value.as_bytes(), context)?;
        Ok(format!("{}:{}", sealed.key_id, BASE64.encode(sealed.bytes)))
    }

    /// Opens text sealed by `seal_text` with the same `context`.
    pub fn open_text(&self, text: &str, context: &str) -> anyhow::Result<String> {
        let (key_id, encoded) = text
            .split_once(':')
            .ok_or_else(|| anyhow!("sealed text has no key id"))?;
        let sealed = Sealed {
            key_id: key_id.to_string(),
            bytes: BASE64.decode(encoded)?,
        };
        Ok(String::from_utf8(self.open(&sealed, context)?)?)
    }

    /// Whether sealed text was sealed with the active key.
    pub fn is_current(&self, text: &str) -> bool {
        text.split_once(':')
            .is_some_and(|(key_id, _)| key_id == self.active_id())
    }

    /// Opens a value sealed by `seal` with the same `context`.
    pub fn open(&self, sealed: &Sealed, context: &str) -> anyhow::Result<Vec<u8>> {
        if sealed.bytes.len() < 12 + 16 {
            bail!("sealed value is too short");
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(12);
        self.cipher(&sealed.key_id)?
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| anyhow!("sealed value does not open with key {}", sealed.key_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        BASE64.encode([byte; 32])
    }

    #[test]
    fn sealed_value_opens_only_in_its_context() {
        let ring = Keyring::parse(&format!("k1:{}", key(1)), None).unwrap();
        let sealed = ring.seal(b"hunter2", "org/1/credential/2/secret").unwrap();
        assert_eq!(
            ring.open(&sealed, "org/1/credential/2/secret").unwrap(),
            b"hunter2"
        );
        assert!(ring.open(&sealed, "org/9/credential/2/secret").is_err());
        assert!(!sealed.bytes.windows(7).any(|w| w == b"hunter2"));
    }

    #[test]
    fn old_keys_still_open_after_the_active_key_changes() {
        let old = Keyring::parse(&format!("k1:{}", key(1)), None).unwrap();
        let sealed = old.seal(b"value", "ctx").unwrap();
        let rotated = Keyring::parse(&format!("k1:{},k2:{}", key(1), key(2)), Some("k2")).unwrap();
        assert_eq!(rotated.active_id(), "k2");
        assert_eq!(rotated.open(&sealed, "ctx").unwrap(), b"value");
        assert_eq!(rotated.seal(b"x", "ctx").unwrap().key_id, "k2");
    }

    #[test]
    fn malformed_keyrings_are_refused() {
        assert!(Keyring::parse("", None).is_err());
        assert!(Keyring::parse("k1:short", None).is_err());
        assert!(Keyring::parse(&format!("k1:{}", key(1)), Some("k9")).is_err());
        assert!(Keyring::parse(&format!("k1:{0},k1:{0}", key(1)), None).is_err());
    }

    #[test]
    fn sealed_text_carries_its_key_id() {
        let ring = Keyring::parse(&format!("k1:{}", key(1)), None).unwrap();
        let sealed = ring.seal_text("postgres://u:pw@db/app", "ctx").unwrap();
        assert!(sealed.starts_with("k1:") && !sealed.contains("pw@db"));
        assert_eq!(
            ring.open_text(&sealed, "ctx").unwrap(),
            "postgres://u:pw@db/app"
        );
        assert!(ring.is_current(&sealed));
        assert!(ring.open_text(&sealed, "other").is_err());
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
    }
}
