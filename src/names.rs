//! Names people read on a page — a person's name, an app's, an API key's,
//! a resource server's — and the one rule they all pass: no character that
//! is invisible or that reorders what is shown (control characters,
//! bidirectional overrides and marks, zero-width and other invisible
//! format characters). Otherwise a name could show as something it is
//! not: a `U+202E` before `moc.elpmaxe` shows it as `example.com`.

/// Whether `c` cannot be shown as itself: a control character, a
/// bidirectional control, or an invisible (zero-width or filler) format
/// character.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Bidirectional marks, embeddings, overrides and isolates.
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            // Zero-width and invisible format characters.
            | '\u{00AD}' | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200D}' | '\u{2028}' | '\u{2029}'
            | '\u{2060}'..='\u{2065}' | '\u{206A}'..='\u{206F}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}'
        )
}

/// Why a name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("it is empty")]
    Empty,
    #[error("it is longer than {0} characters")]
    TooLong(usize),
    #[error("it holds control, bidirectional or invisible characters")]
    Hidden,
}

/// A name as people will read it: trimmed, non-empty, at most `max`
/// characters, every character shown as itself.
pub fn check(name: &str, max: usize) -> Result<&str, NameError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > max {
        return Err(NameError::TooLong(max));
    }
    if name.chars().any(is_hidden) {
        return Err(NameError::Hidden);
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn what_reorders_or_hides_is_refused() {
        for bad in ["moc.elpmaxe\u{202E}", "Bea\u{200B}", "\u{2066}x", "a\u{FEFF}b", "x\u{E0041}", "a\nb", "a\u{7}"] {
            assert_eq!(check(bad, 100), Err(NameError::Hidden), "{bad:?}");
        }
        for good in ["Bea", "Zoë Ångström", "渡辺", "O'Brien & Co.", "Photo Printer 🚀", "ليلى"] {
            assert_eq!(check(good, 100), Ok(good), "{good:?}");
        }
        assert_eq!(check("  ", 100), Err(NameError::Empty));
        assert_eq!(check("abc", 2), Err(NameError::TooLong(2)));
    }

    proptest! {
        #[test]
        fn a_name_passes_exactly_when_every_character_shows(name in "\\PC{0,12}|.{0,12}", max in 1usize..20) {
            match check(&name, max) {
                Ok(kept) => {
                    prop_assert_eq!(kept, name.trim());
                    prop_assert!(!kept.is_empty() && kept.chars().count() <= max);
                    prop_assert!(!kept.chars().any(is_hidden));
                }
                Err(NameError::Hidden) => prop_assert!(name.trim().chars().any(is_hidden)),
                Err(NameError::Empty) => prop_assert!(name.trim().is_empty()),
                Err(NameError::TooLong(n)) => prop_assert!(name.trim().chars().count() > n),
            }
        }
    }
}
