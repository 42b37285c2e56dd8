//! Secrets at rest: API keys kept only as keyed hashes, ЧЗ keys sealed with AES-256-GCM under a
//! rotating master key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::config::NamedSecret;

type HmacSha256 = Hmac<Sha256>;

/// Length of an AES-GCM nonce, in bytes.
const NONCE_LEN: usize = 12;

/// Turns API keys into the keyed SHA-256 digests that are stored and looked up.
///
/// API keys carry 256 bits of randomness, so a slow password hash would add latency to every
/// `/token` call and no safety; the pepper keeps a stolen table useless without the server's
/// configuration.
#[derive(Clone)]
pub struct ApiKeyHasher {
    pepper: SecretString,
}

impl std::fmt::Debug for ApiKeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeyHasher([REDACTED])")
    }
}

impl ApiKeyHasher {
    pub fn new(pepper: SecretString) -> Self {
        Self { pepper }
    }

    /// The 32-byte digest stored in place of `key`.
    pub fn digest(&self, key: &str) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(key.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `presented` is `expected`, compared in constant time.
    pub fn matches(&self, presented: &str, expected: &SecretString) -> bool {
        let mut mac = self.mac();
        mac.update(presented.as_bytes());
        mac.verify_slice(&self.digest(expected.expose_secret()))
            .is_ok()
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length, so this cannot fail.
        <HmacSha256 as Mac>::new_from_slice(self.pepper.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
    }
}

/// `n` random bytes from the operating system's generator, as URL-safe base64.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0_u8; n];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A secret sealed under a master key: what the database keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("no master key is configured with id `{0}`")]
    UnknownKeyId(String),
    #[error("the sealed secret failed authentication")]
    Tampered,
}

/// The configured master keys: the first seals, every one opens what it sealed.
#[derive(Clone)]
pub struct MasterKeys {
    keys: Vec<NamedSecret>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("MasterKeys").field("ids", &ids).finish()
    }
}

impl MasterKeys {
    /// `keys` must hold at least one 32-byte key; [`crate::config::Config`] guarantees it.
    pub fn new(keys: Vec<NamedSecret>) -> Self {
        Self { keys }
    }

    /// Seals `plaintext`, binding it to `context` (e.g. the owning tenant and store), so that a
    /// sealed value copied to another row no longer opens.
    pub fn seal(&self, plaintext: &str, context: &[u8]) -> Result<Sealed, SealError> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| SealError::UnknownKeyId(String::new()))?;
        let mut nonce = [0_u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: context,
        };
        let ciphertext = cipher(key)?
            .encrypt(&Nonce::from(nonce), payload)
            .map_err(|_| SealError::Tampered)?;
        Ok(Sealed {
            key_id: key.id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens a value sealed by any configured master key with the same `context`.
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<SecretString, SealError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| SealError::UnknownKeyId(sealed.key_id.clone()))?;
        let nonce: [u8; NONCE_LEN] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| SealError::Tampered)?;
        let payload = Payload {
            msg: &sealed.ciphertext,
            aad: context,
        };
        let plaintext = cipher(key)?
            .decrypt(&Nonce::from(nonce), payload)
            .map_err(|_| SealError::Tampered)?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| SealError::Tampered)
    }

    /// The id of the key that seals new values.
    pub fn current_id(&self) -> Option<&str> {
        self.keys.first().map(|k| k.id.as_str())
    }
}

fn cipher(key: &NamedSecret) -> Result<Aes256Gcm, SealError> {
    Aes256Gcm::new_from_slice(key.secret.expose_secret())
        .map_err(|_| SealError::UnknownKeyId(key.id.clone()))
}

#[cfg(test)]
mod tests {
    use secrecy::SecretSlice;

    use super::*;

    fn key(id: &str, byte: u8) -> NamedSecret {
        NamedSecret {
            id: id.to_owned(),
            secret: SecretSlice::from(vec![byte; 32]),
        }
    }

    #[test]
    fn a_sealed_secret_opens_after_the_master_key_rotates() {
        let old = MasterKeys::new(vec![key("m1", 1)]);
        let sealed = old.seal("chz-key", b"tenant").unwrap();

        let rotated = MasterKeys::new(vec![key("m2", 2), key("m1", 1)]);

        assert_eq!(
            rotated.open(&sealed, b"tenant").unwrap().expose_secret(),
            "chz-key"
        );
        assert_eq!(rotated.seal("x", b"tenant").unwrap().key_id, "m2");
    }

    #[test]
    fn a_sealed_secret_does_not_open_in_another_context_or_when_altered() {
        let keys = MasterKeys::new(vec![key("m1", 1)]);
        let mut sealed = keys.seal("chz-key", b"tenant-a").unwrap();

        assert!(matches!(
            keys.open(&sealed, b"tenant-b"),
            Err(SealError::Tampered)
        ));
        sealed.ciphertext[0] ^= 1;
        assert!(matches!(
            keys.open(&sealed, b"tenant-a"),
            Err(SealError::Tampered)
        ));
    }

    #[test]
    fn a_retired_master_key_is_named_in_the_error() {
        let sealed = MasterKeys::new(vec![key("m1", 1)]).seal("k", b"").unwrap();

        let error = MasterKeys::new(vec![key("m2", 2)])
            .open(&sealed, b"")
            .unwrap_err();

        assert!(matches!(error, SealError::UnknownKeyId(id) if id == "m1"));
    }

    #[test]
    fn api_key_digests_depend_on_the_pepper() {
        let a = ApiKeyHasher::new("pepper-a".into());
        let b = ApiKeyHasher::new("pepper-b".into());

        assert_eq!(a.digest("key"), a.digest("key"));
        assert_ne!(a.digest("key"), b.digest("key"));
        assert!(a.matches("key", &"key".into()));
        assert!(!a.matches("kez", &"key".into()));
    }
}
