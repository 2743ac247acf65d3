//! The process's side of secrets in settings (`docs/secrets.md`): the key
//! from `--secret-key-file` (a file, or `-` for the first line of stdin),
//! and the stored secrets among the main actor's flags opened before they
//! are decoded, so that the application's arguments see plaintext.

use std::path::Path;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use crate::message::text::TextError;
use crate::secret::{self, SecretError, SecretKey};

/// `--secret-key-file=-`: the key is the first line of stdin.
pub(crate) const FROM_STDIN: &str = "-";

/// The key this process was given, kept (in memory only) for as long as
/// the process runs: a supervisor hands it to the roles it restarts.
static KEY: Mutex<Option<Arc<SecretKey>>> = Mutex::new(None);

/// The key this process was given with `--secret-key-file`, if any.
pub(crate) fn key() -> Option<Arc<SecretKey>> {
    KEY.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Reads the key `--secret-key-file` names and keeps it for [`key`]. From
/// stdin, only the first line is read; the rest (a parent's connect-back
/// key, the lifeline) stays for the child side.
pub(crate) fn load(path: &Path) -> Result<Arc<SecretKey>, SecretError> {
    let key = if path.as_os_str() == FROM_STDIN {
        SecretKey::read_line_from(&mut std::io::stdin().lock(), "stdin")?
    } else {
        SecretKey::read_file(path)?
    };
    let key = Arc::new(key);
    *KEY.lock().unwrap_or_else(|e| e.into_inner()) = Some(key.clone());
    Ok(key)
}

/// The stored secrets among `fields`, opened in place with `key`. Returns
/// the names of the flags that held one. Without a key, a secret is an
/// error, unless `checking` (`--check-settings`): the secrets are then
/// taken out, unchecked (see [`checked_without`]).
pub(crate) fn open_fields(
    fields: &mut Vec<(String, Option<String>)>,
    key: Option<&SecretKey>,
    checking: bool,
) -> Result<Vec<String>, SecretError> {
    let mut names = Vec::new();
    let mut kept = Vec::with_capacity(fields.len());
    for (name, value) in fields.drain(..) {
        let Some(stored) = value.as_deref().filter(|v| secret::is_secret(v)) else {
            kept.push((name, value));
            continue;
        };
        names.push(name.clone());
        match key {
            Some(key) => {
                let plain = secret::open(key, &name, stored)?;
                kept.push((name, Some(plain.as_str().to_owned())));
            }
            None if checking => {}
            None => return Err(SecretError::NoKey { flag: name }),
        }
    }
    *fields = kept;
    Ok(names)
}

/// Whether decoding the fields without the unchecked secrets `names`
/// failed only for want of one of them.
pub(crate) fn checked_without(error: &TextError, names: &[String]) -> bool {
    match error {
        TextError::Missing { field, .. } => names
            .iter()
            .any(|n| field == &format!("--{}", n.replace('_', "-"))),
        _ => false,
    }
}

/// A decoding error about the fields, with the plaintext of any secret
/// (`names`, now opened in `fields`) taken out.
pub(crate) fn redacted(
    error: TextError,
    names: &[String],
    fields: &[(String, Option<String>)],
) -> String {
    let error = match error {
        TextError::Invalid {
            field,
            value,
            reason,
        } if names
            .iter()
            .any(|n| field == format!("--{}", n.replace('_', "-")) || &field == n) =>
        {
            TextError::Invalid {
                field,
                value: value.map(|_| secret::SHOWN.to_owned()),
                reason,
            }
        }
        other => other,
    };
    let mut text = error.to_string();
    for (name, value) in fields {
        if let Some(value) = value
            && names.contains(name)
            && !value.is_empty()
        {
            text = text.replace(value.as_str(), secret::SHOWN);
        }
    }
    text
}

/// Wipes the values of `fields` (the opened secrets among them) when
/// dropped.
pub(crate) struct Wiped(pub(crate) Vec<(String, Option<String>)>);

impl Drop for Wiped {
    fn drop(&mut self) {
        for (_, value) in self.0.drain(..) {
            drop(value.map(Zeroizing::new));
        }
    }
}
