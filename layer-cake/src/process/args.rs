//! Splitting a command line into flags, and resolving short forms.
//!
//! The original library's rules: `--name=value` and a bare `--name`; a short
//! form `-dl` is the initials of the words of a long name (`--debug-level`),
//! and must name exactly one flag.

use std::fmt;

/// One flag as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawFlag {
    /// The name without its dashes (`debug-level`, or `dl` for a short form).
    pub(crate) name: String,
    /// The text after the first `=`; `None` for a bare flag.
    pub(crate) value: Option<String>,
    /// Whether it was given as a short form (`-dl`).
    pub(crate) short: bool,
}

impl fmt::Display for RawFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dashes = if self.short { "-" } else { "--" };
        write!(f, "{dashes}{}", self.name)
    }
}

/// Splits the arguments (without the program name) into flags. Anything
/// that is not a flag is refused with a one-line reason.
pub(crate) fn split<S: AsRef<str>>(args: &[S]) -> Result<Vec<RawFlag>, String> {
    args.iter()
        .map(|arg| {
            let arg = arg.as_ref();
            let (short, rest) = match arg.strip_prefix("--") {
                Some(rest) => (false, rest),
                None => match arg.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => {
                        return Err(format!(
                            "unexpected argument {arg:?} (arguments are flags, --name=value)"
                        ));
                    }
                },
            };
            let (name, value) = match rest.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (rest, None),
            };
            let well_formed = !name.is_empty()
                && !name.starts_with('-')
                && !name.ends_with('-')
                && !name.contains("--")
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !well_formed {
                return Err(format!(
                    "malformed flag {arg:?} (expected --name=value, --name or -n)"
                ));
            }
            Ok(RawFlag {
                name: name.to_owned(),
                value,
                short,
            })
        })
        .collect()
}

/// The short form of a long flag name: the initials of its words
/// (`debug-level` → `dl`, `x` → `x`).
pub(crate) fn initials(long: &str) -> String {
    long.split(['-', '_'])
        .filter_map(|word| word.chars().next())
        .collect()
}

/// The long name a short form stands for, among `names` (long names, with
/// dashes).
pub(crate) fn resolve_short<'a>(short: &str, names: &[&'a str]) -> Result<&'a str, String> {
    let matches: Vec<&str> = names
        .iter()
        .copied()
        .filter(|long| initials(long) == short)
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "unknown flag -{short} (no flag has the initials {short:?})"
        )),
        many => Err(format!(
            "ambiguous flag -{short} (could be {})",
            many.iter()
                .map(|m| format!("--{m}"))
                .collect::<Vec<_>>()
                .join(" or ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_long_short_and_bare() {
        let flags = split(&["--x=2", "--full-output", "-dl=DEBUG", "--s=a=b", "--n=-1"]).unwrap();
        let shown: Vec<(String, Option<&str>)> = flags
            .iter()
            .map(|f| (f.to_string(), f.value.as_deref()))
            .collect();
        assert_eq!(
            shown,
            [
                ("--x".to_string(), Some("2")),
                ("--full-output".to_string(), None),
                ("-dl".to_string(), Some("DEBUG")),
                ("--s".to_string(), Some("a=b")),
                ("--n".to_string(), Some("-1")),
            ]
        );
        assert!(split::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn refuses_what_is_not_a_flag() {
        for (arg, reason) in [
            ("word", "unexpected argument \"word\""),
            ("-", "malformed flag \"-\""),
            ("--", "malformed flag \"--\""),
            ("---x", "malformed flag"),
            ("--=1", "malformed flag"),
            ("--a b", "malformed flag"),
            ("--x-=1", "malformed flag"),
        ] {
            let e = split(&[arg]).unwrap_err();
            assert!(e.starts_with(reason), "{arg}: {e}");
        }
    }

    #[test]
    fn short_forms_are_initials() {
        assert_eq!(initials("debug-level"), "dl");
        assert_eq!(initials("server_address"), "sa");
        assert_eq!(initials("x"), "x");
        let names = ["debug-level", "drain-seconds", "dump-log", "x", "home-path"];
        assert_eq!(resolve_short("ds", &names).unwrap(), "drain-seconds");
        assert_eq!(resolve_short("x", &names).unwrap(), "x");
        assert_eq!(
            resolve_short("dl", &names).unwrap_err(),
            "ambiguous flag -dl (could be --debug-level or --dump-log)"
        );
        assert!(
            resolve_short("q", &names)
                .unwrap_err()
                .starts_with("unknown flag -q")
        );
    }
}
