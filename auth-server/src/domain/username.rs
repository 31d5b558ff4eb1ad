use std::fmt;

/// A login name: trimmed, 1-64 characters of ASCII letters, digits and
/// `.`, `_`, `-`, `@`, `+`. Compared case-insensitively (the database holds a
/// unique index on `lower(username)`); stored as typed.
///
/// ASCII only on purpose: look-alike Unicode names are a phishing aid, and
/// case folding beyond ASCII depends on the database collation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(input: &str) -> Result<Self, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("username must not be empty".into());
        }
        if trimmed.len() > 64 {
            return Err("username must be at most 64 characters".into());
        }
        if let Some(bad) = trimmed
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+')))
        {
            return Err(format!(
                "username may contain only letters, digits and . _ - @ + (found {bad:?})"
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_is_trimmed_and_checked() {
        assert_eq!(Username::parse("  Alice ").unwrap().as_str(), "Alice");
        assert!(Username::parse("   ").is_err());
        assert!(Username::parse("al ice").is_err());
        assert!(Username::parse("ålice").is_err());
        assert!(Username::parse(&"a".repeat(65)).is_err());
        assert!(Username::parse("a.b_c-d@e+f").is_ok());
    }
}
