//! Secrets in settings (`docs/secrets.md`): `secret-key` makes a key file,
//! `secret` encrypts a value read from stdin into a role's settings, and
//! `run`/`start --secret-key-file` hand the key to group-cake over its
//! stdin. Neither the key nor a plaintext is ever a command-line value or
//! an environment variable, and neither is printed.

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::sync::Arc;

use layer_cake::home::{Home, Settings};
use layer_cake::secret::{self, SecretKey};
use zeroize::Zeroizing;

/// `--secret-key-file=-`: the key is the first line of stdin.
pub const FROM_STDIN: &str = "-";

/// The longest secret value read from stdin.
pub const MAX_VALUE: usize = 64 * 1024;

/// Reads the key `--secret-key-file` names: a file only its owner can
/// read, or with `-` the first line of `stdin` (the rest stays unread).
pub fn read_key(path: &Path, stdin: &mut impl BufRead) -> Result<Arc<SecretKey>, String> {
    let key = if path.as_os_str() == FROM_STDIN {
        SecretKey::read_line_from(stdin, "stdin")
    } else {
        SecretKey::read_file(path)
    };
    key.map(Arc::new).map_err(|e| e.to_string())
}

/// `secret-key PATH`: writes a new random key to a new file that only its
/// owner can read (mode 600).
pub fn new_key_file(path: &Path, out: &mut dyn Write) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                format!(
                    "{} already exists (a key is never overwritten)",
                    path.display()
                )
            }
            _ => format!("cannot create {}: {e}", path.display()),
        })?;
    let mut line = SecretKey::generate().to_line();
    line.push('\n');
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    writeln!(out, "wrote a new secret key to {}", path.display()).map_err(|e| e.to_string())
}

/// How `secret` stores the value.
#[derive(Debug, Clone, Default)]
pub struct Import {
    /// `--worker-v0-iv=HEX`: stdin holds a ciphertext in the Redis-worker
    /// seed's format (base64 of AES-128-CBC), whose IV this is.
    pub iv: Option<String>,
    /// `--worker-v0-type=TYPE`: the `type` its plaintext must have.
    pub kind: Option<String>,
}

/// `secret ROLE --name=FLAG`: reads the value from `stdin` (after the key
/// line when the key comes from stdin too; one final newline dropped),
/// encrypts it with the key and stores it as the role's setting `FLAG`,
/// once the role's executable has accepted its settings with it.
pub fn store(
    home: &Home,
    role: &str,
    flag: &str,
    key_file: &Path,
    import: &Import,
    stdin: &mut impl BufRead,
    out: &mut dyn Write,
) -> Result<(), String> {
    let name = flag.trim_start_matches("--");
    let well_formed = !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !well_formed {
        return Err(format!(
            "--name={flag:?} is not a flag name (letters, digits, - and _)"
        ));
    }
    let role = home.role(role).map_err(|e| e.to_string())?;
    if role.is_group() {
        return Err("the group role takes no secrets".into());
    }
    let key = read_key(key_file, stdin)?;
    let mut value = Zeroizing::new(Vec::new());
    stdin
        .take(MAX_VALUE as u64 + 1)
        .read_to_end(&mut value)
        .map_err(|e| format!("cannot read the value from stdin: {e}"))?;
    if value.len() > MAX_VALUE {
        return Err(format!(
            "the value on stdin is longer than {MAX_VALUE} bytes"
        ));
    }
    if value.ends_with(b"\n") {
        value.pop();
        if value.ends_with(b"\r") {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(
            "no value on stdin (pipe it in: printf %s \"$VALUE\" | layer-cake secret ROLE --name=FLAG ...)"
                .into(),
        );
    }
    let value = std::str::from_utf8(&value).map_err(|_| "the value on stdin is not UTF-8 text")?;
    let stored = match (&import.iv, &import.kind) {
        (None, None) => secret::seal(&key, name, value),
        (Some(iv), Some(kind)) => {
            secret::import_worker_v0(&key, name, iv, value, kind).map_err(|e| e.to_string())?
        }
        _ => return Err("--worker-v0-iv and --worker-v0-type go together".into()),
    };
    let held = home.lock().map_err(|e| e.to_string())?;
    crate::roles::refuse_running(std::slice::from_ref(&role))?;
    let mut settings = role.settings().map_err(|e| e.to_string())?;
    settings.insert(name.to_owned(), stored);
    let stored_executable = role.executable().map_err(|e| e.to_string())?;
    // As `update` checks: a copy in script/ first, else next to
    // layer-cake or on PATH.
    let program = home.program(&stored_executable);
    let program = match program.components().count() > 1 {
        true => std::path::absolute(&program).unwrap_or(program),
        false => program,
    };
    let program =
        layer_cake::process::find_program(&program.to_string_lossy()).ok_or_else(|| {
            format!("cannot find {stored_executable} (next to layer-cake or on PATH)")
        })?;
    check_settings(&program, &settings, &key)?;
    role.set_settings_held(&held, &settings)
        .map_err(|e| e.to_string())?;
    writeln!(out, "stored a secret in {} --{name}", role.name()).map_err(|e| e.to_string())
}

/// Asks `program` whether it accepts `settings` with their secrets opened:
/// `--check-settings --secret-key-file=-`, the key on its stdin.
fn check_settings(program: &Path, settings: &Settings, key: &SecretKey) -> Result<(), String> {
    let shown = program.display();
    let mut child = std::process::Command::new(program)
        .arg("--check-settings")
        .arg(format!("--secret-key-file={FROM_STDIN}"))
        .args(crate::roles::flags(settings))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let mut line = key.to_line();
    line.push('\n');
    if let Some(mut pipe) = child.stdin.take() {
        // A program that exits without reading is reported by its status.
        let _ = pipe.write_all(line.as_bytes());
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    crate::roles::settings_verdict(&shown.to_string(), &output)
}

/// A role's settings as flags to show: a secret's value is `<secret>`.
pub fn shown_flags(settings: &Settings) -> Vec<String> {
    settings
        .iter()
        .map(|(k, v)| format!("--{k}={}", secret::shown(v)))
        .collect()
}
