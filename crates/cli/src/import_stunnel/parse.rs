//! stunnel's configuration syntax: `key = value` lines, `[section]`
//! headers, `;` and `#` comments. Options before the first section are
//! global; stunnel also reads the service options found there as defaults
//! for every section of the file.

use std::path::{Path, PathBuf};

/// One `key = value` line.
#[derive(Debug, Clone)]
pub(super) struct Opt {
    /// As written, for messages.
    pub key: String,
    /// Lower case: stunnel compares option names without case.
    pub lower: String,
    pub value: String,
    pub line: usize,
}

/// One `[name]` service and its options, in file order.
#[derive(Debug, Clone)]
pub(super) struct Section {
    pub name: String,
    pub line: usize,
    pub options: Vec<Opt>,
}

/// A stunnel configuration file, read but not interpreted.
#[derive(Debug, Clone)]
pub(super) struct StunnelFile {
    /// Absolute, so that relative paths inside resolve from its folder.
    pub path: PathBuf,
    /// As the user named it, for messages.
    pub shown: String,
    pub global: Vec<Opt>,
    pub sections: Vec<Section>,
}

/// A line that is neither a comment, a section header nor `key = value`.
#[derive(Debug)]
pub(super) struct SyntaxError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

impl std::error::Error for SyntaxError {}

impl StunnelFile {
    /// The folder relative paths of this file resolve from.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }
}

/// Reads `text`, the content of `path` (named `shown` in messages).
pub(super) fn parse(path: PathBuf, shown: &str, text: &str) -> Result<StunnelFile, SyntaxError> {
    let mut file = StunnelFile {
        path,
        shown: shown.to_string(),
        global: Vec::new(),
        sections: Vec::new(),
    };
    let error = |line, reason: String| SyntaxError {
        file: shown.to_string(),
        line,
        reason,
    };
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim().trim_start_matches('\u{feff}');
        if trimmed.is_empty() || trimmed.starts_with(';') || trimmed.starts_with('#') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    error(
                        line,
                        format!("{trimmed:?} is not a section header ([name])"),
                    )
                })?;
            file.sections.push(Section {
                name: name.to_string(),
                line,
                options: Vec::new(),
            });
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(error(
                line,
                format!("{trimmed:?} is neither `option = value` nor a [section]"),
            ));
        };
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(error(line, format!("{key:?} is not an option name")));
        }
        let opt = Opt {
            key: key.to_string(),
            lower: key.to_ascii_lowercase(),
            value: value.trim().to_string(),
            line,
        };
        match file.sections.last_mut() {
            Some(section) => section.options.push(opt),
            None => file.global.push(opt),
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globals_sections_and_comments() {
        let text = "; comment\nforeground = yes\n\n[a b]\n# c\nclient=yes\naccept = 1\n[x]\n";
        let f = parse("/s.conf".into(), "s.conf", text).unwrap();
        assert_eq!(f.global.len(), 1);
        assert_eq!(f.global[0].lower, "foreground");
        assert_eq!(f.sections.len(), 2);
        assert_eq!(f.sections[0].name, "a b");
        assert_eq!(f.sections[0].options[0].value, "yes");
        assert_eq!(f.sections[0].options[1].line, 7);
        assert!(f.sections[1].options.is_empty());
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = parse("/s.conf".into(), "s.conf", "[a]\nclient yes\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "s.conf:2: \"client yes\" is neither `option = value` nor a [section]"
        );
        let e = parse("/s.conf".into(), "s.conf", "[a\n").unwrap_err();
        assert_eq!(e.line, 1);
    }
}
