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

/// Drops the key kept for [`key`] (wiped once no child's options hold it
/// either): the process is ending.
pub(crate) fn forget() {
    KEY.lock().unwrap_or_else(|e| e.into_inner()).take();
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

/// Whether `field`, as a decoding error names it, is one of `names`.
fn names_one(field: &str, names: &[String]) -> bool {
    names
        .iter()
        .any(|n| field == n || field == format!("--{}", n.replace('_', "-")))
}

/// Whether decoding the fields without the unchecked secrets `names`
/// failed only for want of one of them.
pub(crate) fn checked_without(error: &TextError, names: &[String]) -> bool {
    matches!(error, TextError::Missing { field, .. } if names_one(field, names))
}

/// `--check-settings` without the key, once the fields without the
/// secrets `names` lacked one: decodes them again with an empty
/// placeholder for each secret, after the others, so that every other
/// field is checked (present and well formed, none missing); an error about
/// a placeholder is no error.
pub(crate) fn check_around<A: serde::de::DeserializeOwned>(
    fields: &[(String, Option<String>)],
    names: &[String],
) -> Result<(), String> {
    let mut with = fields.to_vec();
    with.extend(names.iter().map(|n| (n.clone(), Some(String::new()))));
    match crate::message::text::from_fields::<A>(&with, crate::message::text::Source::Flag) {
        Ok(_) => Ok(()),
        Err(TextError::Invalid { field, .. }) if names_one(&field, names) => Ok(()),
        Err(e) => Err(e.to_string()),
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
        } if names_one(&field, names) => TextError::Invalid {
            field,
            value: value.map(|_| secret::SHOWN.to_owned()),
            reason,
        },
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

#[cfg(test)]
mod tests {
    use super::super::entry::{EXIT_CONFIG, EXIT_USAGE, Parsed, parse};
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Args {
        api_key: String,
        port: u16,
    }

    fn key_file(dir: &Path, key: &SecretKey) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("key");
        std::fs::write(&path, format!("{}\n", key.to_line().as_str())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        format!("--secret-key-file={}", path.display())
    }

    #[test]
    fn the_arguments_see_the_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate();
        let flag = key_file(dir.path(), &key);
        let api_key = format!("--api-key={}", secret::seal(&key, "api-key", "hunter2"));
        match parse::<Args, _>("p", &[api_key.as_str(), "--port=80", &flag]) {
            Ok(Parsed::Run(config, args)) => {
                assert_eq!(args.api_key, "hunter2");
                assert_eq!(args.port, 80);
                assert!(config.secret_key_file.is_some());
            }
            other => panic!("{other:?}"),
        }
        // Checking with the key checks the secret too.
        assert!(matches!(
            parse::<Args, _>(
                "p",
                &[api_key.as_str(), "--port=80", &flag, "--check-settings"]
            ),
            Ok(Parsed::Checked)
        ));
    }

    #[test]
    fn without_the_key_a_secret_fails_closed_but_may_be_checked_around() {
        let key = SecretKey::generate();
        let api_key = format!("--api-key={}", secret::seal(&key, "api-key", "hunter2"));
        let e = parse::<Args, _>("p", &[api_key.as_str(), "--port=80"]).unwrap_err();
        assert_eq!(e.code, EXIT_CONFIG);
        assert_eq!(
            e.text,
            "--api-key holds a secret and no key was given (--secret-key-file=PATH, or - for the first line of stdin)"
        );
        // --check-settings without the key: the rest is checked.
        assert!(matches!(
            parse::<Args, _>("p", &[api_key.as_str(), "--port=80", "--check-settings"]),
            Ok(Parsed::Checked)
        ));
        let e =
            parse::<Args, _>("p", &[api_key.as_str(), "--port=x", "--check-settings"]).unwrap_err();
        assert_eq!(e.code, EXIT_USAGE);
        assert!(
            e.text.starts_with("--port: invalid value \"x\""),
            "{}",
            e.text
        );
        let e = parse::<Args, _>("p", &[api_key.as_str(), "--check-settings"]).unwrap_err();
        assert_eq!(e.text, "missing flag --port");
    }

    #[test]
    fn a_plaintext_that_does_not_decode_is_not_shown() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Numeric {
            pin: u32,
        }
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate();
        let flag = key_file(dir.path(), &key);
        let pin = format!("--pin={}", secret::seal(&key, "pin", "not-a-number-s3cr3t"));
        let e = parse::<Numeric, _>("p", &[pin.as_str(), &flag]).unwrap_err();
        assert_eq!(e.code, EXIT_USAGE);
        assert!(
            e.text.starts_with("--pin: invalid value \"<secret>\""),
            "{}",
            e.text
        );
        assert!(!e.text.contains("s3cr3t"), "{}", e.text);
    }

    #[test]
    fn a_child_is_told_to_read_the_key_from_stdin_never_given_it() {
        let key = Arc::new(SecretKey::generate());
        let hex = key.to_line().split_once(' ').unwrap().1.to_owned();
        let hub = crate::net::HostPort::new("127.0.0.1", 9);
        let config = super::super::ProcessConfig::default();
        let options = super::super::ProcessOptions::new("/bin/role").flag("x", "1");
        assert!(
            !options
                .arguments(&config, &hub)
                .iter()
                .any(|a| a.starts_with("--secret-key-file"))
        );
        let options = options.secret_key(key);
        let args = options.arguments(&config, &hub);
        assert!(args.contains(&"--secret-key-file=-".to_owned()), "{args:?}");
        assert!(!args.iter().any(|a| a.contains(&hex)), "{args:?}");
        assert!(!format!("{options:?}").contains(&hex));
    }

    #[test]
    fn a_bad_key_file_is_one_line_and_status_78() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none");
        let flag = format!("--secret-key-file={}", path.display());
        let e = parse::<Args, _>("p", &["--port=1", flag.as_str()]).unwrap_err();
        assert_eq!(e.code, EXIT_CONFIG);
        assert!(
            e.text.starts_with(&format!(
                "cannot read the secret key from {}:",
                path.display()
            )),
            "{}",
            e.text
        );
    }
}
