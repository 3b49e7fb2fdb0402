//! Where a person goes after signing in (`next`): only ever a path on this
//! server, parsed once into a `LocalPath`; anything else means `/`.
//!
//! Browsers are lenient with `Location`: they drop tabs and newlines
//! (`/\t/evil` becomes `//evil`), read `\` as `/` (`/\evil`), and take
//! `//host` for another origin; and a value may be decoded once more on
//! its way (`/%2F/evil`). So a path is accepted only when it, and every
//! percent-decoding of it, starts with exactly one `/` followed by neither
//! `/` nor `\`, and holds no control character and no backslash.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// The longest `next` kept (an authorization request with its state fits).
pub const MAX_LEN: usize = 4096;
/// Percent-decodings looked through; a value that still changes after
/// this many is refused rather than followed further.
const MAX_DECODINGS: usize = 4;
/// What is escaped in the kept value, so that it is a valid header value
/// of visible ASCII (non-ASCII is always escaped).
const UNSAFE_IN_HEADER: &AsciiSet = &CONTROLS.add(b' ');

/// A path on this server, safe to send in `Location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPath(String);

impl LocalPath {
    /// The home page: where a refused `next` leads.
    pub fn root() -> Self {
        Self("/".into())
    }

    /// `text` if it is a local path (see the module), else `None`.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() > MAX_LEN {
            return None;
        }
        let mut current = Cow::Borrowed(text);
        for _ in 0..=MAX_DECODINGS {
            if !is_local(&current) {
                return None;
            }
            let decoded = percent_decode_str(&current).decode_utf8_lossy().into_owned();
            if decoded == current {
                return Some(Self(utf8_percent_encode(text, UNSAFE_IN_HEADER).to_string()));
            }
            current = Cow::Owned(decoded);
        }
        None
    }

    /// The parsed `next`, or `/` when there is none or it is refused.
    pub fn parse_or_root(text: Option<&str>) -> Self {
        text.and_then(Self::parse).unwrap_or_else(Self::root)
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One `/`, then neither `/` nor `\`; no control character, no backslash.
fn is_local(path: &str) -> bool {
    let mut chars = path.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !path.chars().any(|c| c.is_control() || c == '\\')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn refuses_every_way_out_of_this_origin() {
        for evil in [
            "",
            "evil",
            "https://evil",
            "//evil",
            "/\\evil",
            "\\/evil",
            "/\t/evil.example",
            "/%09/evil.example",
            "/\t\\evil",
            "/\\\\evil",
            "/%2F/evil",
            "/%2f%2fevil",
            "/%5Cevil",
            "/%5cevil",
            "/%0a/evil",
            "/a%0d%0aSet-Cookie:x",
            "/%252F%252Fevil",
            "/%25252525252F/evil",
            "/a\u{85}b",
            "/a%C2%85b",
            "/a\\b",
        ] {
            assert_eq!(LocalPath::parse(evil), None, "{evil:?}");
            assert_eq!(LocalPath::parse_or_root(Some(evil)), LocalPath::root());
        }
        assert!(LocalPath::parse(&format!("/{}", "a".repeat(MAX_LEN))).is_none());
    }

    #[test]
    fn keeps_local_paths() {
        for local in ["/", "/dashboard", "/oauth/authorize?client_id=cl_x&state=a%3Cb%26c", "/100%", "/a/%2Fb"] {
            assert_eq!(LocalPath::parse(local).unwrap().as_str(), local);
        }
        assert_eq!(LocalPath::parse("/café au lait").unwrap().as_str(), "/caf%C3%A9%20au%20lait");
        assert!(LocalPath::parse_or_root(None).is_root());
    }

    /// Pieces an attacker would combine.
    fn tricky() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/"),
            Just("\\"),
            Just("%"),
            Just("%2F"),
            Just("%2f"),
            Just("%5C"),
            Just("%25"),
            Just("%09"),
            Just("\t"),
            Just("\n"),
            Just("2F"),
            Just("5c"),
            Just("a"),
            Just("."),
            Just(":"),
            Just("é"),
            Just(" "),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
    }

    fn holds(path: &str) -> bool {
        let mut chars = path.chars();
        chars.next() == Some('/')
            && !matches!(chars.next(), Some('/' | '\\'))
            && path.chars().all(|c| !c.is_control() && c != '\\')
    }

    proptest! {
        #[test]
        fn whatever_is_accepted_stays_local(text in prop_oneof![".*", tricky()]) {
            if let Some(path) = LocalPath::parse(&text) {
                let kept = path.as_str();
                prop_assert!(kept.bytes().all(|b| b.is_ascii_graphic()), "a valid header value: {kept:?}");
                let mut current = kept.to_string();
                for _ in 0..=MAX_DECODINGS + 1 {
                    prop_assert!(holds(&current), "{text:?} → {current:?}");
                    current = percent_decode_str(&current).decode_utf8_lossy().into_owned();
                }
            }
        }
    }
}
