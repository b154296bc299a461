//! Interface names as arguments: checked by clap before any syscall, with
//! the kernel's rules (`dev_valid_name()` in net/core/dev.c, which
//! tun-sys's `InterfaceName` applies) and, for templates, those of
//! `dev_alloc_name()`: at most one `%`, and it must be `%d`.

/// Parse an interface name or a `%d` template; the error says what is
/// wrong with it (clap turns it into a usage error, exit 2).
pub fn parse_name(s: &str) -> Result<String, String> {
    tun_sys::InterfaceName::new(s).map_err(|e| e.to_string())?;
    let percents: Vec<usize> = s.match_indices('%').map(|(i, _)| i).collect();
    match percents.as_slice() {
        [] => Ok(s.to_string()),
        [at] if s[at + 1..].starts_with('d') => Ok(s.to_string()),
        [at] => Err(format!(
            "interface name has a '%' at offset {at} that is not '%d' (a template takes \
             exactly one %d, which the kernel replaces with a number)"
        )),
        [_, second, ..] => Err(format!(
            "interface name has a second '%' at offset {second} (a template takes exactly one %d)"
        )),
    }
}

/// Parse a name that must not be a template (an existing device).
pub fn parse_existing(s: &str) -> Result<String, String> {
    let name = parse_name(s)?;
    if name.contains('%') {
        return Err("a template (%d) names no device: give the device's name".into());
    }
    Ok(name)
}

/// One line of text: control characters (a newline in a name, say)
/// escaped, so that an error stays on one line.
pub fn one_line(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_say_what_is_wrong() {
        // The kernel's rules are tun-sys's (tested there); the template
        // rules are this module's (the CLI tests run every case end to end).
        for (name, what) in [
            ("a%d%d", "second '%'"),
            ("a%s", "not '%d'"),
            ("a%", "not '%d'"),
            ("a/b", "'/'"),
        ] {
            let e = parse_name(name).unwrap_err();
            assert!(e.contains(what), "{name:?}: {e}");
        }
        for good in ["tun0", "tun%d", "%d", "abcdefghijklmno", "a-b_c.d"] {
            assert_eq!(parse_name(good).as_deref(), Ok(good));
        }
        assert!(parse_existing("tun%d").is_err());
    }

    #[test]
    fn one_line_escapes_control_characters() {
        assert_eq!(one_line("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(one_line("ünï"), "ünï");
    }
}
