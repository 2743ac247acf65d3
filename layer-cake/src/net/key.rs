//! The LAN key: the secret the hosts of one LAN share, which encrypts and
//! authenticates every native link that leaves a host.
//!
//! It is 32 random bytes kept hex-encoded in a file only its owner can read
//! (mode 0600). `layer-cake lan-key create` writes one; every process reads
//! it once at start from, in order:
//!
//! 1. the `--lan-key=PATH` flag,
//! 2. the `LAYER_CAKE_LAN_KEY` environment variable (a path),
//! 3. the default place: `/etc/layer-cake/lan.key` for root, otherwise
//!    `lan.key` in the user's configuration folder for layer-cake
//!    (`~/.config/layer-cake/lan.key` on Linux).
//!
//! A key file that group or others can read is refused, not used: a key that
//! has leaked to other local users no longer tells LAN hosts apart from
//! anyone on them.
//!
//! ```
//! use layer_cake::net::LanKey;
//!
//! let folder = tempfile::tempdir().unwrap();
//! let path = folder.path().join("lan.key");
//! let made = LanKey::create(&path, false).unwrap();
//! assert_eq!(LanKey::load(&path).unwrap(), made);
//! // Not replaced without `force`.
//! assert!(LanKey::create(&path, false).is_err());
//! ```

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::TryRngCore;

/// The environment variable naming the LAN key file.
pub const LAN_KEY_ENV: &str = "LAYER_CAKE_LAN_KEY";

/// The key file's name in the default folders.
const FILE_NAME: &str = "lan.key";

/// How many bytes a key has.
pub const LAN_KEY_BYTES: usize = 32;

/// The key shared by the hosts of a LAN (see the [module](self) doc).
///
/// Cheap to clone (the bytes are shared); `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct LanKey(Arc<[u8; LAN_KEY_BYTES]>);

impl std::fmt::Debug for LanKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LanKey(..)")
    }
}

/// Why a LAN key could not be read, written or found.
#[derive(Debug, thiserror::Error)]
pub enum LanKeyError {
    /// The file named by the flag or the environment does not exist.
    #[error(
        "no LAN key at {}: create one with `layer-cake lan-key create --path {}` (and copy it to every host of the LAN)",
        path.display(),
        path.display()
    )]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("cannot read the LAN key at {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Group or others may read the file: it is not used.
    #[error(
        "the LAN key at {} can be read by other users (mode {mode:03o}); it is not used: run `chmod 600 {}` (and consider making a new key)",
        path.display(),
        path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file does not hold 64 hex digits.
    #[error("the LAN key at {} is not {} hex digits", path.display(), LAN_KEY_BYTES * 2)]
    Malformed {
        /// The file.
        path: PathBuf,
    },
    /// `create` without `force` found a key already there.
    #[error("a LAN key already exists at {}: pass --force to replace it", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The key could not be written.
    #[error("cannot write the LAN key at {}: {source}", path.display())]
    Write {
        /// The file (or its folder).
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The operating system's random source failed.
    #[error("cannot draw random bytes for a LAN key: {0}")]
    Random(String),
    /// Neither flag nor environment names a file and there is no home folder
    /// to find the default one in.
    #[error(
        "no place for the LAN key: pass --lan-key=PATH or set {LAN_KEY_ENV} (there is no home folder for the default)"
    )]
    NoDefault,
}

impl LanKey {
    /// A key of these bytes.
    pub fn from_bytes(bytes: [u8; LAN_KEY_BYTES]) -> LanKey {
        LanKey(Arc::new(bytes))
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> Result<LanKey, LanKeyError> {
        let mut bytes = [0u8; LAN_KEY_BYTES];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| LanKeyError::Random(e.to_string()))?;
        Ok(LanKey::from_bytes(bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8; LAN_KEY_BYTES] {
        &self.0
    }

    /// The key as 64 lowercase hex digits (what the file holds).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads 64 hex digits (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Option<LanKey> {
        let text = text.trim().as_bytes();
        if text.len() != LAN_KEY_BYTES * 2 {
            return None;
        }
        let mut bytes = [0u8; LAN_KEY_BYTES];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(LanKey::from_bytes(bytes))
    }

    /// Reads the key at `path`, refusing a file that group or others can
    /// read.
    pub fn load(path: &Path) -> Result<LanKey, LanKeyError> {
        let read = |source| LanKeyError::Read {
            path: path.to_owned(),
            source,
        };
        let mut file = match fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LanKeyError::Missing {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(read(e)),
        };
        let mode = file.metadata().map_err(read)?.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(LanKeyError::TooOpen {
                path: path.to_owned(),
                mode,
            });
        }
        // 64 digits and a newline; a larger file is not a key.
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(&mut file, 256), &mut text)
            .map_err(read)?;
        LanKey::from_hex(&text).ok_or_else(|| LanKeyError::Malformed {
            path: path.to_owned(),
        })
    }

    /// Makes a new key and writes it to `path` (mode 0600, its folder
    /// created if need be). An existing file is replaced only with `force`
    /// (atomically: a reader sees the old key or the new one).
    pub fn create(path: &Path, force: bool) -> Result<LanKey, LanKeyError> {
        let write = |source| LanKeyError::Write {
            path: path.to_owned(),
            source,
        };
        if !force && fs::symlink_metadata(path).is_ok() {
            return Err(LanKeyError::Exists {
                path: path.to_owned(),
            });
        }
        let key = LanKey::generate()?;
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&folder)
            .map_err(write)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| FILE_NAME.into());
        let temporary = folder.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)?;
            writeln!(file, "{}", key.to_hex())?;
            file.sync_all()?;
            if force {
                fs::rename(&temporary, path)
            } else {
                // Refuses to replace a key that appeared meanwhile.
                fs::hard_link(&temporary, path).and_then(|()| fs::remove_file(&temporary))
            }
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temporary);
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                return Err(LanKeyError::Exists {
                    path: path.to_owned(),
                });
            }
            return Err(write(e));
        }
        if let Ok(dir) = fs::File::open(&folder) {
            let _ = dir.sync_all();
        }
        Ok(key)
    }

    /// Where the key is looked for: `flag` if given, else the
    /// `LAYER_CAKE_LAN_KEY` environment variable, else
    /// [`default_path`](LanKey::default_path).
    pub fn locate(flag: Option<&Path>) -> Result<PathBuf, LanKeyError> {
        if let Some(path) = flag {
            return Ok(path.to_owned());
        }
        if let Some(path) = std::env::var_os(LAN_KEY_ENV).filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(path));
        }
        LanKey::default_path().ok_or(LanKeyError::NoDefault)
    }

    /// The default place: `/etc/layer-cake/lan.key` for root, else
    /// `lan.key` in layer-cake's configuration folder of the user (from the
    /// `directories` crate). None when the user has no home folder.
    pub fn default_path() -> Option<PathBuf> {
        if nix::unistd::geteuid().is_root() {
            return Some(PathBuf::from("/etc/layer-cake").join(FILE_NAME));
        }
        directories::ProjectDirs::from("", "", "layer-cake")
            .map(|dirs| dirs.config_dir().join(FILE_NAME))
    }

    /// The key this process uses: the file [`locate`](LanKey::locate) names.
    /// `Ok(None)` when no flag or variable named a file and there is none at
    /// the default place (links that leave the host are then refused); an
    /// error when a named file is missing, or any key file is unreadable,
    /// open to other users or malformed.
    pub fn find(flag: Option<&Path>) -> Result<Option<LanKey>, LanKeyError> {
        let explicit =
            flag.is_some() || std::env::var_os(LAN_KEY_ENV).is_some_and(|p| !p.is_empty());
        let path = match LanKey::locate(flag) {
            Ok(path) => path,
            Err(LanKeyError::NoDefault) => return Ok(None),
            Err(e) => return Err(e),
        };
        match LanKey::load(&path) {
            Ok(key) => Ok(Some(key)),
            Err(LanKeyError::Missing { .. }) if !explicit => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_bad_text() {
        let key = LanKey::generate().unwrap();
        assert_eq!(LanKey::from_hex(&key.to_hex()), Some(key.clone()));
        assert_eq!(
            LanKey::from_hex(&format!("  {}\n", key.to_hex())),
            Some(key)
        );
        assert_eq!(LanKey::from_hex("00"), None);
        assert_eq!(LanKey::from_hex(&"zz".repeat(32)), None);
        assert_eq!(LanKey::from_hex(&"é".repeat(32)), None);
    }

    #[test]
    fn debug_never_shows_the_bytes() {
        let key = LanKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{key:?}"), "LanKey(..)");
    }

    #[test]
    fn create_writes_an_owner_only_file_and_refuses_to_overwrite() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("deeper/lan.key");
        let first = LanKey::create(&path, false).unwrap();
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            LanKey::create(&path, false),
            Err(LanKeyError::Exists { .. })
        ));
        assert_eq!(LanKey::load(&path).unwrap(), first);
        let second = LanKey::create(&path, true).unwrap();
        assert_ne!(first, second);
        assert_eq!(LanKey::load(&path).unwrap(), second);
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn load_refuses_open_missing_and_malformed_files() {
        use std::os::unix::fs::PermissionsExt;
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("lan.key");
        assert!(matches!(
            LanKey::load(&path),
            Err(LanKeyError::Missing { .. })
        ));
        LanKey::create(&path, false).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = LanKey::load(&path).unwrap_err();
        assert!(
            matches!(err, LanKeyError::TooOpen { mode: 0o640, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "not a key\n").unwrap();
        assert!(matches!(
            LanKey::load(&path),
            Err(LanKeyError::Malformed { .. })
        ));
    }

    #[test]
    fn an_explicit_path_that_is_missing_is_an_error() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("absent.key");
        assert!(matches!(
            LanKey::find(Some(&path)),
            Err(LanKeyError::Missing { .. })
        ));
        assert_eq!(LanKey::locate(Some(&path)).unwrap(), path);
    }
}
