//! Form and query parameters of the OAuth endpoints (RFC 6749 §3.1, §3.2),
//! parsed once into a map before any rule reads them. Parsing is bounded:
//! at most `MAX_PARAMS` parameters, repeats included, so a large body
//! (read before the client is authenticated) buys neither quadratic work
//! nor a large map.

use std::collections::HashMap;

use super::OAuthError;

/// The most parameters one request may carry. The endpoints read about a
/// dozen; 64 leaves room for extensions and is cheap to look through.
pub const MAX_PARAMS: usize = 64;

/// The request carries more than `MAX_PARAMS` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request has too many parameters (at most {MAX_PARAMS})")]
pub struct TooManyParams;

/// A form body (`application/x-www-form-urlencoded`) or query string as
/// RFC 6749 reads it: a parameter may appear at most once, and an empty
/// value counts as absent.
#[derive(Debug, Default, Clone)]
pub struct Params {
    /// The first value of each name, in order of first appearance.
    pairs: Vec<(String, String)>,
    /// Name → its index in `pairs`.
    index: HashMap<String, usize>,
    /// Names that appeared more than once (only the first value is kept).
    repeated: Vec<String>,
}

impl Params {
    /// Parses and refuses too many or repeated parameters with
    /// `invalid_request`.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let params = Self::parse_lenient(body).map_err(|e| OAuthError::invalid_request(e.to_string()))?;
        match params.repeated.first() {
            Some(name) => Err(OAuthError::invalid_request(format!(
                "the parameter {} appears more than once",
                super::printable(name)
            ))),
            None => Ok(params),
        }
    }

    /// Parses and notes repeated parameters, for callers that must know
    /// some parameters before they can report the error (the authorization
    /// endpoint redirects it). Too many parameters is still an error: it
    /// stops the parse at the first one past the limit.
    pub fn parse_lenient(body: &[u8]) -> Result<Self, TooManyParams> {
        let mut params = Self::default();
        for (count, (name, value)) in form_urlencoded::parse(body).enumerate() {
            if count == MAX_PARAMS {
                return Err(TooManyParams);
            }
            if params.index.contains_key(name.as_ref()) {
                if !params.repeated.iter().any(|r| *r == name) {
                    params.repeated.push(name.into_owned());
                }
                continue;
            }
            params.index.insert(name.to_string(), params.pairs.len());
            params.pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(params)
    }

    pub fn repeated(&self) -> &[String] {
        &self.repeated
    }

    /// Every parameter, in order of first appearance (first values).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// A parameter's value; an empty one counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        let value = &self.pairs[*self.index.get(name)?].1;
        (!value.is_empty()).then_some(value.as_str())
    }

    /// A required parameter.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| OAuthError::invalid_request(format!("the {name} parameter is missing")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Bytes rich in the characters a form parser cares about.
    fn form_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![Just(b'&'), Just(b'='), Just(b'%'), Just(b'+'), Just(b'a'), any::<u8>()],
            0..600,
        )
    }

    fn serialize<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            out.append_pair(k, v);
        }
        out.finish()
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic_and_within_the_cap(body in form_bytes()) {
            if let Ok(params) = Params::parse_lenient(&body) {
                prop_assert!(params.pairs().len() <= MAX_PARAMS);
                let mut names: Vec<&str> = params.pairs().iter().map(|(n, _)| n.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                prop_assert_eq!(names.len(), params.pairs().len(), "each name once");
            }
            let _ = Params::parse(&body);
        }

        #[test]
        fn a_serialized_map_round_trips(
            map in proptest::collection::btree_map(".{0,12}", ".{1,24}", 0..=MAX_PARAMS)
        ) {
            let params = Params::parse(serialize(&map).as_bytes()).unwrap();
            let expected: Vec<(String, String)> = map.clone().into_iter().collect();
            prop_assert_eq!(params.pairs(), expected.as_slice());
            for (k, v) in &map {
                prop_assert_eq!(params.get(k), Some(v.as_str()));
            }
        }

        #[test]
        fn a_repeated_name_is_reported(
            map in proptest::collection::btree_map("[a-z_]{1,10}", ".{0,12}", 1..40),
            pick in any::<prop::sample::Index>(),
            again in ".{0,12}",
        ) {
            let name = pick.get(&map.keys().collect::<Vec<_>>()).to_string();
            let body = format!("{}&{}", serialize(&map), serialize([(&name, &again)]));
            let params = Params::parse_lenient(body.as_bytes()).unwrap();
            prop_assert_eq!(params.repeated(), std::slice::from_ref(&name));
            prop_assert_eq!(params.get(&name), Some(map[&name].as_str()).filter(|v| !v.is_empty()));
            let err = Params::parse(body.as_bytes()).unwrap_err();
            prop_assert_eq!(err.error, "invalid_request");
        }

        #[test]
        fn more_than_the_cap_is_refused(extra in 1usize..500) {
            let map: BTreeMap<String, String> =
                (0..MAX_PARAMS + extra).map(|i| (format!("p{i}"), "v".to_string())).collect();
            prop_assert_eq!(Params::parse_lenient(serialize(&map).as_bytes()).unwrap_err(), TooManyParams);
            prop_assert_eq!(Params::parse(serialize(&map).as_bytes()).unwrap_err().error, "invalid_request");
        }
    }

    #[test]
    fn empty_values_count_as_absent() {
        let params = Params::parse(b"a=&b=1&c").unwrap();
        assert_eq!((params.get("a"), params.get("b"), params.get("c")), (None, Some("1"), None));
        assert!(params.require("a").is_err());
        assert_eq!(params.pairs().len(), 3);
    }
}
