//! Scopes (RFC 6749 §3.3): space-delimited, case-sensitive tokens of
//! printable ASCII without `"` and `\`. Kept as a sorted set so that the
//! same grant always reads the same.

use std::collections::BTreeSet;

/// Longest scope token accepted, and most tokens in one request.
pub const MAX_SCOPE_TOKEN_LEN: usize = 128;
pub const MAX_SCOPES: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    /// Parses a `scope` parameter; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for token in text.split(' ').filter(|t| !t.is_empty()) {
            if token.len() > MAX_SCOPE_TOKEN_LEN {
                return Err(format!("a scope is longer than {MAX_SCOPE_TOKEN_LEN} characters"));
            }
            if !token.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)) {
                return Err("a scope holds a character RFC 6749 §3.3 does not allow".into());
            }
            set.insert(token.to_string());
        }
        if set.len() > MAX_SCOPES {
            return Err(format!("more than {MAX_SCOPES} scopes"));
        }
        Ok(Self(set))
    }

    /// What the database stores: the parse of a value this module wrote.
    pub fn from_stored(text: &str) -> Self {
        Self(text.split(' ').filter(|t| !t.is_empty()).map(str::to_string).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn is_subset(&self, other: &Scopes) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn intersection(&self, other: &Scopes) -> Scopes {
        Self(self.0.intersection(&other.0).cloned().collect())
    }

    /// The tokens of `self` that `other` lacks, space-separated.
    pub fn missing_from(&self, other: &Scopes) -> String {
        self.0.difference(&other.0).cloned().collect::<Vec<_>>().join(" ")
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// `self` without `scope`.
    pub fn without(mut self, scope: &str) -> Scopes {
        self.0.remove(scope);
        self
    }

    pub fn union(mut self, other: &Scopes) -> Scopes {
        self.0.extend(other.0.iter().cloned());
        self
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.iter().collect::<Vec<_>>().join(" "))
    }
}

impl serde::Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::Scopes;

    #[test]
    fn parses_rfc_6749_scope_tokens() {
        let s = Scopes::parse("write  read read").unwrap();
        assert_eq!(s.to_string(), "read write");
        assert!(Scopes::parse("").unwrap().is_empty());
        assert!(Scopes::parse("a\"b").is_err());
        assert!(Scopes::parse("a\\b").is_err());
        assert!(Scopes::parse("é").is_err());
        assert!(Scopes::parse("a\tb").is_err());
        assert!(Scopes::parse(&"x".repeat(129)).is_err());
        let many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
        assert!(Scopes::parse(&many.join(" ")).is_err());
    }

    #[test]
    fn subset_and_difference() {
        let allowed = Scopes::parse("read write").unwrap();
        let asked = Scopes::parse("read admin").unwrap();
        assert!(!asked.is_subset(&allowed));
        assert_eq!(asked.missing_from(&allowed), "admin");
        assert_eq!(asked.intersection(&allowed).to_string(), "read");
    }
}
