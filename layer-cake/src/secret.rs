//! Secrets in role settings: a setting stored encrypted in a role's
//! `settings.json`, decrypted by the role's process when it starts, so that
//! the application's typed arguments see the plaintext and the home holds
//! only ciphertext. See `docs/secrets.md`.
//!
//! **The key** is 16 random bytes written as one line, the Redis-worker
//! seed's: `worker-v0 <32 hex digits>`. It reaches a process on its
//! standard input or from a file named by `--secret-key-file` — never from
//! an environment variable or a command-line value, which other local users
//! can read in `/proc`.
//!
//! **A stored secret** is a setting whose value is a small JSON object:
//!
//! * `{"secret":"v1:<base64>"}` — the default for new secrets: AES-256-GCM
//!   (authenticated) with a key derived from the 16-byte key
//!   ([`SecretKey`]'s `v1` key: keyed BLAKE2s-256 of
//!   `layer-cake secret v1 aes-256-gcm`), a random 96-bit nonce, and the
//!   flag's name as associated data; the base64 text is the nonce, then the
//!   ciphertext and its 16-byte tag.
//! * `{"secret":"worker-v0:<iv hex>:<base64>","type":"<T>"}` — the seed's
//!   format, read for interoperation: AES-128-CBC with PKCS#7 padding under
//!   the key itself (`openssl enc -aes-128-cbc -K <key> -iv <iv> -base64
//!   -A`); the plaintext must be a JSON object whose `type` is `T`.
//!   Not authenticated: see `docs/secrets.md`.
//!
//! A value of exactly that shape (an object with a string `secret` and,
//! optionally, `type`) is taken as a stored secret; an unknown scheme is
//! refused rather than passed on.

use std::io::{BufRead, Read};
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload as AeadPayload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use zeroize::{ZeroizeOnDrop, Zeroizing};

/// The first word of the key line, the only key format there is.
pub const KEY_LINE_TYPE: &str = "worker-v0";

/// The longest key line read (from stdin or a file), in bytes, as the seed.
pub const MAX_KEY_LINE: usize = 256;

/// The scheme prefix of a new (AES-256-GCM) secret.
const V1: &str = "v1:";
/// The scheme prefix of a secret in the Redis-worker seed's format.
const WORKER_V0: &str = "worker-v0:";
/// What the `v1` key is derived with.
const V1_KEY_LABEL: &[u8] = b"layer-cake secret v1 aes-256-gcm";
/// The start of a `v1` secret's associated data; the flag's name follows.
const V1_AAD: &[u8] = b"layer-cake secret v1\0";
/// What `list -l` shows in place of a secret's value.
pub const SHOWN: &str = "<secret>";

/// Why a key could not be had or a secret could not be opened: one line
/// each, naming the flag. Never holds a key or a plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The key line's first word is not `worker-v0`.
    #[error(
        "the key line is of type {found:?}, not \"worker-v0\" (expected: worker-v0 <32 hex digits>)"
    )]
    KeyType {
        /// The first word found (at most 32 characters of it).
        found: String,
    },
    /// The key line starts right but is not `worker-v0 <32 hex digits>`.
    #[error("the key line is not \"worker-v0 <32 hex digits>\": {why}")]
    KeyMalformed {
        /// What is wrong with it.
        why: &'static str,
    },
    /// The key could not be read.
    #[error("cannot read the secret key from {from}: {reason}")]
    KeyUnreadable {
        /// `stdin` or the file's path.
        from: String,
        /// Why.
        reason: String,
    },
    /// The key file can be read or written by other users.
    #[error("the secret key file {path} is open to other users (mode {mode:03o}); chmod 600 it")]
    KeyFileOpen {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A setting holds a secret and the process was given no key.
    #[error(
        "--{flag} holds a secret and no key was given (--secret-key-file=PATH, or - for the first line of stdin)"
    )]
    NoKey {
        /// The setting.
        flag: String,
    },
    /// The value has the shape of a stored secret but not a known scheme or
    /// encoding.
    #[error("--{flag}: not a readable stored secret: {why}")]
    Malformed {
        /// The setting.
        flag: String,
        /// What is wrong.
        why: String,
    },
    /// A `v1` secret did not authenticate.
    #[error("--{flag}: cannot decrypt the secret: wrong key, or the stored value was changed")]
    Authentication {
        /// The setting.
        flag: String,
    },
    /// A `worker-v0` secret's padding is wrong after decryption.
    #[error("--{flag}: cannot decrypt the secret: wrong key or corrupt value (bad PKCS7 padding)")]
    Padding {
        /// The setting.
        flag: String,
    },
    /// A `worker-v0` secret decrypted to something that is not a JSON
    /// object (a wrong key that happened to leave good padding, or a
    /// corrupt value).
    #[error("--{flag}: cannot decrypt the secret: wrong key or corrupt value (not a JSON object)")]
    Garbled {
        /// The setting.
        flag: String,
    },
    /// A `worker-v0` secret's decrypted `type` is not the stored one.
    #[error("--{flag}: the decrypted secret is of type {found}, not {expected:?}")]
    TypeMismatch {
        /// The setting.
        flag: String,
        /// The `type` stored next to the ciphertext.
        expected: String,
        /// The decrypted `type` (as JSON: `null` when missing).
        found: String,
    },
    /// The decrypted bytes are not UTF-8 text.
    #[error("--{flag}: the decrypted secret is not UTF-8 text")]
    NotText {
        /// The setting.
        flag: String,
    },
}

/// The key that opens the secrets of a home: 16 bytes, wiped from memory
/// when dropped. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq, ZeroizeOnDrop)]
pub struct SecretKey {
    bytes: [u8; 16],
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Self {
        SecretKey {
            bytes: rand::random(),
        }
    }

    /// The key with these bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        SecretKey { bytes }
    }

    /// Reads a key line, `worker-v0 <32 hex digits>` (surrounding white
    /// space and a final newline allowed).
    pub fn parse_line(line: &str) -> Result<Self, SecretError> {
        let mut words = line.split_ascii_whitespace();
        let kind = words.next().ok_or(SecretError::KeyMalformed {
            why: "the line is empty",
        })?;
        if kind != KEY_LINE_TYPE {
            return Err(SecretError::KeyType {
                found: kind.chars().take(32).collect(),
            });
        }
        let hex = words.next().ok_or(SecretError::KeyMalformed {
            why: "no key after worker-v0",
        })?;
        if words.next().is_some() {
            return Err(SecretError::KeyMalformed {
                why: "more than two words",
            });
        }
        let bytes: Zeroizing<Vec<u8>> =
            Zeroizing::new(decode_hex(hex).ok_or(SecretError::KeyMalformed {
                why: "the key is not hex digits",
            })?);
        let bytes: [u8; 16] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| SecretError::KeyMalformed {
                    why: "the key is not 32 hex digits (16 bytes, AES-128)",
                })?;
        Ok(SecretKey { bytes })
    }

    /// The key line, `worker-v0 <32 hex digits>` (no newline), wiped when
    /// dropped.
    pub fn to_line(&self) -> Zeroizing<String> {
        let mut line = Zeroizing::new(String::with_capacity(KEY_LINE_TYPE.len() + 33));
        line.push_str(KEY_LINE_TYPE);
        line.push(' ');
        for b in self.bytes {
            line.push(char::from(HEX[usize::from(b >> 4)]));
            line.push(char::from(HEX[usize::from(b & 15)]));
        }
        line
    }

    /// Reads the key line from the start of `input` (at most
    /// [`MAX_KEY_LINE`] bytes, up to a newline), leaving the rest unread.
    /// `from` names the input in errors (`stdin`).
    pub fn read_line_from(input: &mut impl BufRead, from: &str) -> Result<Self, SecretError> {
        let mut line = Zeroizing::new(Vec::new());
        input
            .take(MAX_KEY_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| SecretError::KeyUnreadable {
                from: from.to_owned(),
                reason: e.to_string(),
            })?;
        if line.is_empty() {
            return Err(SecretError::KeyUnreadable {
                from: from.to_owned(),
                reason: "it ended before the key line".into(),
            });
        }
        if line.len() > MAX_KEY_LINE {
            return Err(SecretError::KeyMalformed {
                why: "the line is longer than 256 bytes",
            });
        }
        let text = std::str::from_utf8(&line).map_err(|_| SecretError::KeyMalformed {
            why: "the line is not text",
        })?;
        Self::parse_line(text)
    }

    /// Reads the key line from a file, which only its owner may read or
    /// write (mode 600 or 400).
    pub fn read_file(path: &Path) -> Result<Self, SecretError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display().to_string();
        let unreadable = |e: std::io::Error| SecretError::KeyUnreadable {
            from: shown.clone(),
            reason: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        if !meta.is_file() {
            return Err(SecretError::KeyUnreadable {
                from: shown,
                reason: "not a file".into(),
            });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::KeyFileOpen { path: shown, mode });
        }
        let mut text = Zeroizing::new(Vec::new());
        file.take(MAX_KEY_LINE as u64 + 1)
            .read_to_end(&mut text)
            .map_err(unreadable)?;
        if text.len() > MAX_KEY_LINE {
            return Err(SecretError::KeyMalformed {
                why: "the file is longer than 256 bytes",
            });
        }
        let text = std::str::from_utf8(&text).map_err(|_| SecretError::KeyMalformed {
            why: "the file is not text",
        })?;
        Self::parse_line(text)
    }

    /// The AES-256-GCM cipher of `v1` secrets: its key is the keyed
    /// BLAKE2s-256 of [`V1_KEY_LABEL`] under this key, so that the key
    /// never serves two ciphers.
    fn v1_cipher(&self) -> Aes256Gcm {
        use blake2::digest::Mac;
        let mut mac =
            <blake2::Blake2sMac256 as blake2::digest::KeyInit>::new_from_slice(&self.bytes)
                .expect("16 bytes is a valid BLAKE2s key length");
        mac.update(V1_KEY_LABEL);
        let derived = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
        Aes256Gcm::new(derived.as_ref().into())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Hex digits (either case) to bytes; `None` if not an even run of them.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| char::from(c).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

/// The shape of a stored secret.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    secret: String,
    #[serde(rename = "type")]
    kind: Option<String>,
}

fn stored(value: &str) -> Option<Stored> {
    if !value.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(value).ok()
}

/// Whether a setting's value is a stored secret (see the module docs).
pub fn is_secret(value: &str) -> bool {
    stored(value).is_some()
}

/// A setting's value as it may be shown: [`SHOWN`] for a secret, else the
/// value.
pub fn shown(value: &str) -> &str {
    if is_secret(value) { SHOWN } else { value }
}

/// The associated data of a `v1` secret of flag `flag` (`_` and `-` are the
/// same in flag names).
fn v1_aad(flag: &str) -> Vec<u8> {
    let mut aad = V1_AAD.to_vec();
    aad.extend_from_slice(flag.replace('_', "-").as_bytes());
    aad
}

/// Encrypts `plaintext` as a new (`v1`, AES-256-GCM) secret for the setting
/// `flag`, and returns the value to store.
pub fn seal(key: &SecretKey, flag: &str, plaintext: &str) -> String {
    let nonce: [u8; 12] = rand::random();
    let sealed = key
        .v1_cipher()
        .encrypt(
            Nonce::from_slice(&nonce),
            AeadPayload {
                msg: plaintext.as_bytes(),
                aad: &v1_aad(flag),
            },
        )
        .expect("AES-GCM encrypts any message shorter than 64 GiB");
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&sealed);
    serde_json::json!({ "secret": format!("{V1}{}", BASE64.encode(blob)) }).to_string()
}

/// Encrypts a JSON object `plaintext` in the Redis-worker seed's format
/// (AES-128-CBC, PKCS#7, a random IV), whose `type` must be `kind`, and
/// returns the value to store. For interoperation and tests: new secrets
/// should be [`seal`]ed.
pub fn seal_worker_v0(key: &SecretKey, kind: &str, plaintext: &str) -> Result<String, String> {
    let object: serde_json::Value =
        serde_json::from_str(plaintext).map_err(|_| "the value is not a JSON object")?;
    if object.get("type").and_then(|t| t.as_str()) != Some(kind) {
        return Err(format!("the value's \"type\" is not {kind:?}"));
    }
    use cbc::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
    let iv: [u8; 16] = rand::random();
    let ciphertext = cbc::Encryptor::<aes::Aes128>::new(&key.bytes.into(), &iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes());
    Ok(worker_v0_value(&iv, &BASE64.encode(ciphertext), kind))
}

/// The value to store for a secret already encrypted in the Redis-worker
/// seed's format: its IV (hex), its ciphertext (base64, as `openssl enc
/// -base64 -A` writes it) and its `type`. It is opened with `key` first, so
/// that nothing is stored that would not open.
pub fn import_worker_v0(
    key: &SecretKey,
    flag: &str,
    iv_hex: &str,
    ciphertext_base64: &str,
    kind: &str,
) -> Result<String, SecretError> {
    let iv: [u8; 16] = decode_hex(iv_hex.trim())
        .and_then(|iv| iv.try_into().ok())
        .ok_or_else(|| SecretError::Malformed {
            flag: flag.to_owned(),
            why: "the IV is not 32 hex digits".into(),
        })?;
    let value = worker_v0_value(&iv, ciphertext_base64.trim(), kind);
    open(key, flag, &value)?;
    Ok(value)
}

fn worker_v0_value(iv: &[u8; 16], ciphertext_base64: &str, kind: &str) -> String {
    let iv: String = iv
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
        .map(char::from)
        .collect();
    serde_json::json!({
        "secret": format!("{WORKER_V0}{iv}:{ciphertext_base64}"),
        "type": kind,
    })
    .to_string()
}

/// Opens the stored secret `value` of setting `flag` with `key`: the
/// plaintext, wiped from memory when dropped.
pub fn open(key: &SecretKey, flag: &str, value: &str) -> Result<Zeroizing<String>, SecretError> {
    let malformed = |why: &str| SecretError::Malformed {
        flag: flag.to_owned(),
        why: why.to_owned(),
    };
    let stored = stored(value).ok_or_else(|| malformed("not {\"secret\": \"...\"}"))?;
    let bytes: Zeroizing<Vec<u8>> = if let Some(blob) = stored.secret.strip_prefix(V1) {
        if stored.kind.is_some() {
            return Err(malformed("a v1 secret has no \"type\""));
        }
        let blob = BASE64
            .decode(blob)
            .map_err(|_| malformed("the v1 value is not base64"))?;
        if blob.len() < 12 + 16 {
            return Err(malformed("the v1 value is too short"));
        }
        let (nonce, sealed) = blob.split_at(12);
        Zeroizing::new(
            key.v1_cipher()
                .decrypt(
                    Nonce::from_slice(nonce),
                    AeadPayload {
                        msg: sealed,
                        aad: &v1_aad(flag),
                    },
                )
                .map_err(|_| SecretError::Authentication {
                    flag: flag.to_owned(),
                })?,
        )
    } else if let Some(rest) = stored.secret.strip_prefix(WORKER_V0) {
        let expected = stored
            .kind
            .as_deref()
            .ok_or_else(|| malformed("a worker-v0 secret needs its \"type\""))?;
        let (iv, ciphertext) = rest
            .split_once(':')
            .ok_or_else(|| malformed("a worker-v0 value is worker-v0:<iv hex>:<base64>"))?;
        let iv: [u8; 16] = decode_hex(iv)
            .and_then(|iv| iv.try_into().ok())
            .ok_or_else(|| malformed("the IV is not 32 hex digits"))?;
        let ciphertext = BASE64
            .decode(ciphertext)
            .map_err(|_| malformed("the worker-v0 ciphertext is not base64"))?;
        use cbc::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
        let plain = Zeroizing::new(
            cbc::Decryptor::<aes::Aes128>::new(&key.bytes.into(), &iv.into())
                .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext)
                .map_err(|_| SecretError::Padding {
                    flag: flag.to_owned(),
                })?,
        );
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&plain)
            .map_err(|_| SecretError::Garbled {
                flag: flag.to_owned(),
            })?;
        let found = object.get("type").cloned().unwrap_or_default();
        if found.as_str() != Some(expected) {
            return Err(SecretError::TypeMismatch {
                flag: flag.to_owned(),
                expected: expected.to_owned(),
                found: found.to_string().chars().take(64).collect(),
            });
        }
        drop(object);
        plain
    } else {
        let scheme = stored.secret.split(':').next().unwrap_or_default();
        return Err(malformed(&format!(
            "unknown scheme {:?} (known: v1, worker-v0)",
            scheme.chars().take(16).collect::<String>()
        )));
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| SecretError::NotText {
        flag: flag.to_owned(),
    })?;
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference §2c: computed with `printf '%s' "$PT" | openssl enc
    /// -aes-128-cbc -K $KEY -iv $IV -base64 -A`.
    const OPENSSL_KEY_LINE: &str = "worker-v0 000102030405060708090a0b0c0d0e0f";
    const OPENSSL_IV: &str = "101112131415161718191a1b1c1d1e1f";
    const OPENSSL_CIPHERTEXT: &str =
        "oRTAOOsx0X2i62YTu++uEnqHA9BsR0JdodSNItmyWBBk+A7108k3NK1vCNuMzMVF";
    const OPENSSL_PLAINTEXT: &str = r#"{ "password": "hello", "type": "demo-worker" }"#;

    fn openssl_key() -> SecretKey {
        SecretKey::parse_line(OPENSSL_KEY_LINE).unwrap()
    }

    #[test]
    fn the_openssl_vector_decrypts() {
        let key = openssl_key();
        let value = import_worker_v0(
            &key,
            "secret-config",
            OPENSSL_IV,
            OPENSSL_CIPHERTEXT,
            "demo-worker",
        )
        .unwrap();
        assert_eq!(
            value,
            r#"{"secret":"worker-v0:101112131415161718191a1b1c1d1e1f:oRTAOOsx0X2i62YTu++uEnqHA9BsR0JdodSNItmyWBBk+A7108k3NK1vCNuMzMVF","type":"demo-worker"}"#
        );
        assert!(is_secret(&value));
        assert_eq!(
            open(&key, "secret-config", &value).unwrap().as_str(),
            OPENSSL_PLAINTEXT
        );
    }

    #[test]
    fn worker_v0_refuses_a_wrong_key_and_a_type_mismatch() {
        let value = worker_v0_value(
            &decode_hex(OPENSSL_IV).unwrap().try_into().unwrap(),
            OPENSSL_CIPHERTEXT,
            "demo-worker",
        );
        let wrong = SecretKey::parse_line("worker-v0 ffffffffffffffffffffffffffffffff").unwrap();
        assert_eq!(
            open(&wrong, "s", &value).unwrap_err().to_string(),
            "--s: cannot decrypt the secret: wrong key or corrupt value (bad PKCS7 padding)"
        );
        let other_type = value.replace("\"demo-worker\"", "\"other-worker\"");
        assert_eq!(
            open(&openssl_key(), "s", &other_type)
                .unwrap_err()
                .to_string(),
            "--s: the decrypted secret is of type \"demo-worker\", not \"other-worker\""
        );
        // Through import: nothing is stored that would not open.
        assert!(matches!(
            import_worker_v0(
                &openssl_key(),
                "s",
                OPENSSL_IV,
                OPENSSL_CIPHERTEXT,
                "x-worker"
            ),
            Err(SecretError::TypeMismatch { .. })
        ));
        // A decrypted object without a type.
        let key = openssl_key();
        use cbc::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
        let iv = [7u8; 16];
        let ct = cbc::Encryptor::<aes::Aes128>::new(&key.bytes.into(), &iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(br#"{"password":"x"}"#);
        let untyped = worker_v0_value(&iv, &BASE64.encode(ct), "demo-worker");
        assert_eq!(
            open(&key, "s", &untyped).unwrap_err().to_string(),
            "--s: the decrypted secret is of type null, not \"demo-worker\""
        );
        // Without a stored type, nothing to check against: refused.
        let no_type = r#"{"secret":"worker-v0:101112131415161718191a1b1c1d1e1f:oRTAOOsx0X2i62YTu++uEnqHA9BsR0JdodSNItmyWBBk+A7108k3NK1vCNuMzMVF"}"#;
        assert_eq!(
            open(&key, "s", no_type).unwrap_err().to_string(),
            "--s: not a readable stored secret: a worker-v0 secret needs its \"type\""
        );
    }

    #[test]
    fn key_lines_other_than_worker_v0_are_refused() {
        for (line, error) in [
            (
                "worker-v1 000102030405060708090a0b0c0d0e0f",
                "the key line is of type \"worker-v1\", not \"worker-v0\" (expected: worker-v0 <32 hex digits>)",
            ),
            (
                "",
                "the key line is not \"worker-v0 <32 hex digits>\": the line is empty",
            ),
            (
                "worker-v0",
                "the key line is not \"worker-v0 <32 hex digits>\": no key after worker-v0",
            ),
            (
                "worker-v0 0001",
                "the key line is not \"worker-v0 <32 hex digits>\": the key is not 32 hex digits (16 bytes, AES-128)",
            ),
            (
                "worker-v0 zz0102030405060708090a0b0c0d0e0f",
                "the key line is not \"worker-v0 <32 hex digits>\": the key is not hex digits",
            ),
            (
                "worker-v0 000102030405060708090a0b0c0d0e0f extra",
                "the key line is not \"worker-v0 <32 hex digits>\": more than two words",
            ),
        ] {
            assert_eq!(
                SecretKey::parse_line(line).unwrap_err().to_string(),
                error,
                "{line:?}"
            );
        }
        let key = SecretKey::parse_line(" worker-v0 000102030405060708090A0B0C0D0E0F\r\n").unwrap();
        assert_eq!(key, openssl_key());
        assert_eq!(key.to_line().as_str(), OPENSSL_KEY_LINE);
        assert_eq!(format!("{key:?}"), "SecretKey(..)");
    }

    #[test]
    fn the_key_line_is_read_from_the_start_of_a_stream() {
        let mut input = std::io::Cursor::new(format!("{OPENSSL_KEY_LINE}\nthe rest\n"));
        let key = SecretKey::read_line_from(&mut input, "stdin").unwrap();
        assert_eq!(key, openssl_key());
        let mut rest = String::new();
        input.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "the rest\n");
        let mut empty = std::io::Cursor::new("");
        assert_eq!(
            SecretKey::read_line_from(&mut empty, "stdin")
                .unwrap_err()
                .to_string(),
            "cannot read the secret key from stdin: it ended before the key line"
        );
        let mut long = std::io::Cursor::new("x".repeat(300));
        assert!(matches!(
            SecretKey::read_line_from(&mut long, "stdin"),
            Err(SecretError::KeyMalformed { .. })
        ));
    }

    #[test]
    fn key_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("{OPENSSL_KEY_LINE}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            SecretKey::read_file(&path).unwrap_err().to_string(),
            format!(
                "the secret key file {} is open to other users (mode 644); chmod 600 it",
                path.display()
            )
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(SecretKey::read_file(&path).unwrap(), openssl_key());
        assert!(matches!(
            SecretKey::read_file(&dir.path().join("none")),
            Err(SecretError::KeyUnreadable { .. })
        ));
    }

    #[test]
    fn v1_round_trips_and_is_the_default() {
        let key = SecretKey::generate();
        for plaintext in ["", "hunter2", "ünïcødé 🔑", &"x".repeat(10_000)] {
            let value = seal(&key, "api-key", plaintext);
            assert!(value.starts_with(r#"{"secret":"v1:"#), "{value}");
            assert!(is_secret(&value));
            assert_eq!(shown(&value), "<secret>");
            if !plaintext.is_empty() {
                assert!(!value.contains(plaintext));
            }
            assert_eq!(open(&key, "api-key", &value).unwrap().as_str(), plaintext);
            // `_` and `-` name the same flag.
            assert_eq!(open(&key, "api_key", &value).unwrap().as_str(), plaintext);
        }
        // Two seals of one value differ (a fresh nonce each).
        assert_ne!(seal(&key, "a", "same"), seal(&key, "a", "same"));
    }

    #[test]
    fn v1_refuses_tampering_a_wrong_key_and_another_flag() {
        let key = SecretKey::generate();
        let value = seal(&key, "api-key", "hunter2");
        let auth =
            "--api-key: cannot decrypt the secret: wrong key, or the stored value was changed";
        assert_eq!(
            open(&SecretKey::generate(), "api-key", &value)
                .unwrap_err()
                .to_string(),
            auth
        );
        // Every byte of the blob (nonce, ciphertext, tag) is covered.
        let blob = BASE64
            .decode(
                stored(&value)
                    .unwrap()
                    .secret
                    .strip_prefix(V1)
                    .unwrap()
                    .as_bytes(),
            )
            .unwrap();
        for i in 0..blob.len() {
            let mut changed = blob.clone();
            changed[i] ^= 0x01;
            let tampered =
                serde_json::json!({ "secret": format!("v1:{}", BASE64.encode(&changed)) })
                    .to_string();
            assert_eq!(
                open(&key, "api-key", &tampered).unwrap_err().to_string(),
                auth,
                "byte {i}"
            );
        }
        // Moved to another setting: refused.
        assert!(matches!(
            open(&key, "password", &value),
            Err(SecretError::Authentication { .. })
        ));
        for (bad, why) in [
            (r#"{"secret":"v1:!!"}"#, "the v1 value is not base64"),
            (r#"{"secret":"v1:AAAA"}"#, "the v1 value is too short"),
            (
                r#"{"secret":"v2:AAAA"}"#,
                "unknown scheme \"v2\" (known: v1, worker-v0)",
            ),
            ("plain", "not {\"secret\": \"...\"}"),
        ] {
            assert_eq!(
                open(&key, "k", bad).unwrap_err().to_string(),
                format!("--k: not a readable stored secret: {why}")
            );
        }
    }

    #[test]
    fn worker_v0_round_trips() {
        let key = SecretKey::generate();
        let plaintext = r#"{"password":"p","type":"demo-worker"}"#;
        let value = seal_worker_v0(&key, "demo-worker", plaintext).unwrap();
        assert_eq!(open(&key, "x", &value).unwrap().as_str(), plaintext);
        assert!(seal_worker_v0(&key, "other", plaintext).is_err());
        assert!(seal_worker_v0(&key, "demo-worker", "not json").is_err());
    }

    #[test]
    fn the_v1_key_derivation_matches_python() {
        // python3 -c "import hashlib; print(hashlib.blake2s(
        //   b'layer-cake secret v1 aes-256-gcm', key=bytes(range(16))).hexdigest())"
        use blake2::digest::Mac;
        let mut mac = <blake2::Blake2sMac256 as blake2::digest::KeyInit>::new_from_slice(
            &openssl_key().bytes,
        )
        .unwrap();
        mac.update(V1_KEY_LABEL);
        let derived: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(
            derived.to_vec(),
            decode_hex("876e8fc9ed55944cda909cd48efd3912648a337cc6135c089ecd95fa31e80464").unwrap()
        );
    }

    #[test]
    fn only_the_secret_shape_is_a_secret() {
        assert!(!is_secret("hello"));
        assert!(!is_secret(r#"{"regular_steps": 30.0}"#));
        assert!(!is_secret(r#"{"secret": 5}"#));
        assert!(!is_secret(r#"{"secret": "v1:x", "other": 1}"#));
        assert!(is_secret(r#" {"secret": "v1:x"}"#));
        assert_eq!(shown("hello"), "hello");
    }
}
