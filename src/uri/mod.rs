//! URI checks shared by configuration, client registration, resource
//! servers and the authorization endpoint: absolute URIs, redirect URIs
//! and loopback hosts. Kept apart from `oauth` so that `config` can use
//! them without depending on the services.

pub mod next;

/// Schemes that run code or read local data in a browser: never a
/// redirect target.
const FORBIDDEN_SCHEMES: [&str; 6] = ["javascript", "data", "vbscript", "file", "about", "blob"];

pub const MAX_REDIRECT_URI_LEN: usize = 2000;

/// The scheme and authority of a `scheme://authority/…` URI, lower-cased
/// (RFC 3986 §6.2.2.1: only these are case-insensitive), and the rest.
pub fn split_uri(uri: &str) -> (String, String, &str) {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return (String::new(), String::new(), uri);
    };
    let Some(after) = rest.strip_prefix("//") else {
        return (scheme.to_ascii_lowercase(), String::new(), rest);
    };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    (scheme.to_ascii_lowercase(), after[..end].to_ascii_lowercase(), &after[end..])
}

/// The host of an authority (`host`, `host:port`, `[v6]`, `[v6]:port`),
/// or `None` when what follows the host is not a port: `[::1]evil` has no
/// host, so it can never pass for a loopback address.
fn host_of(authority: &str) -> Option<&str> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after)
        }
        None => match authority.rsplit_once(':') {
            Some((host, _)) => (host, &authority[host.len()..]),
            None => (authority, ""),
        },
    };
    let port_ok = port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    port_ok.then_some(host)
}

/// Whether `host[:port]` is a loopback address (RFC 8252 §7.3, §8.3).
pub fn is_loopback(authority: &str) -> bool {
    matches!(host_of(authority), Some("localhost" | "127.0.0.1" | "::1"))
}

/// An absolute URI (RFC 3986 scheme, then `:`), no fragment, no spaces or
/// control characters. The error completes "… is not usable: …".
pub fn check_absolute_uri(uri: &str) -> Result<(), &'static str> {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err("is not an absolute URI");
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.is_empty() {
        return Err("is not an absolute URI");
    }
    if uri.contains('#') {
        return Err("has a fragment");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("holds spaces or control characters");
    }
    Ok(())
}

/// A redirect URI is compared as an exact string later, so it is taken
/// only if it is absolute, has no fragment, is not a script or data
/// scheme, and uses https — or http on a loopback host, for native apps
/// and development. Private-use schemes (`com.example.app:/cb`) are allowed
/// for native apps. The error is a sentence about `uri`.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_REDIRECT_URI_LEN {
        return Err(format!("a redirect URI is longer than {MAX_REDIRECT_URI_LEN} characters"));
    }
    check_absolute_uri(uri).map_err(|why| format!("redirect URI {uri:?} {why}"))?;
    let (scheme, authority, _) = split_uri(uri);
    if FORBIDDEN_SCHEMES.contains(&scheme.as_str()) {
        return Err(format!("redirect URI {uri:?} uses the {scheme}: scheme, which is never allowed"));
    }
    if (scheme == "http" || scheme == "https") && authority.is_empty() {
        return Err(format!("redirect URI {uri:?} has no host"));
    }
    if authority.contains('@') {
        return Err(format!("redirect URI {uri:?} holds user information"));
    }
    if !authority.is_empty() && host_of(&authority).is_none_or(str::is_empty) {
        return Err(format!("redirect URI {uri:?} has no valid host and port"));
    }
    if scheme == "http" && !is_loopback(&authority) {
        return Err(format!("redirect URI {uri:?} must use https (http only for localhost)"));
    }
    Ok(())
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`;
/// `redis://:secret@host` → `redis://:***@host`.
/// The user info ends at the last `@` (a password may hold `/`, `?` or
/// `#`, escaped or not); everything after its first `:` is hidden.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn loopback_hosts_are_exact() {
        for ok in ["localhost", "localhost:8080", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:9"] {
            assert!(is_loopback(ok), "{ok}");
        }
        for bad in ["[::1]evil", "[::1]:80evil", "localhost.evil", "127.0.0.1evil", "localhost:8x", "[::1", "evil"] {
            assert!(!is_loopback(bad), "{bad}");
        }
        assert!(check_redirect_uri("http://[::1]evil/").is_err());
        assert!(check_redirect_uri("http://[::1]:8080/cb").is_ok());
        assert!(check_redirect_uri("https://app.example/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/cb").is_ok());
        for bad in ["JavaScript:alert(1)", "http://evil/cb", "https://u@evil/", "https://x/#f", "/relative", "https://"]
        {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn redirect_checks_never_panic_and_accept_only_safe_uris(uri in "\\PC{0,60}") {
            if check_redirect_uri(&uri).is_ok() {
                let (scheme, authority, _) = split_uri(&uri);
                prop_assert!(!FORBIDDEN_SCHEMES.contains(&scheme.as_str()));
                prop_assert!(!uri.contains('#') && !uri.chars().any(|c| c.is_control() || c.is_whitespace()));
                prop_assert!(!authority.contains('@'));
                prop_assert!(scheme != "http" || is_loopback(&authority));
            }
        }

        #[test]
        fn http_redirects_pass_only_for_loopback_hosts(host in "[a-z0-9.:\\[\\]]{0,20}", path in "[a-z/]{0,10}") {
            let uri = format!("http://{host}/{path}");
            if check_redirect_uri(&uri).is_ok() {
                let lower = host.to_ascii_lowercase();
                prop_assert!(matches!(host_of(&lower), Some("localhost" | "127.0.0.1" | "::1")));
            }
        }
    }
}
