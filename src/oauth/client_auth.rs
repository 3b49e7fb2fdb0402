//! Client authentication at the token, introspection and revocation
//! endpoints: exactly one method per request, and it must be the one the
//! client registered, except that a `client_secret_basic` or
//! `client_secret_post` client may send its secret either way (RFC 6749
//! §2.3.1). A secret is never an assertion's key here, and a JWT client
//! never sends a secret. Every failure is an audit event (client id, IP,
//! reason; never the secret).

use base64::Engine;

use super::assertion::{self, JWT_BEARER};
use super::clients::{self, AuthMethod, Client};
use super::resources::{self, ResourceServer};
use super::{AuthServer, OAuthError, Request};
use crate::audit::AuthFailure;
use crate::request::current_request_id;
use crate::store::DbConn;

/// Longest client id or secret taken from a request.
const MAX_CREDENTIAL_LEN: usize = 512;

/// What the request presents, before anything is checked.
#[derive(Debug)]
pub enum Credentials {
    Basic {
        id: String,
        secret: String,
    },
    Post {
        id: String,
        secret: String,
    },
    Assertion {
        id: Option<String>,
        assertion: String,
    },
    /// A public client names itself and proves nothing (PKCE does).
    IdOnly {
        id: String,
    },
    Nothing,
}

impl Credentials {
    fn method(&self) -> &'static str {
        match self {
            Self::Basic { .. } => "client_secret_basic",
            Self::Post { .. } => "client_secret_post",
            Self::Assertion { .. } => "jwt assertion",
            Self::IdOnly { .. } => "none",
            Self::Nothing => "none",
        }
    }

    fn client_id(&self) -> Option<&str> {
        match self {
            Self::Basic { id, .. } | Self::Post { id, .. } | Self::IdOnly { id } => Some(id),
            Self::Assertion { id, .. } => id.as_deref(),
            Self::Nothing => None,
        }
    }
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic
/// encoding, so `+` is a space and `%XX` a byte.
fn form_decode(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8().ok().map(|s| s.into_owned())
}

fn basic_credentials(header: &str) -> Result<Option<(String, String)>, OAuthError> {
    let Some((scheme, value)) = header.trim().split_once(' ') else {
        return Err(OAuthError::invalid_client("the Authorization header is malformed"));
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "only Basic authentication is accepted in the Authorization header here",
        ));
    }
    let malformed = || OAuthError::invalid_client("the Basic credentials are malformed");
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.trim()).map_err(|_| malformed())?;
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    let (id, secret) = text.split_once(':').ok_or_else(malformed)?;
    let id = form_decode(id).ok_or_else(malformed)?;
    let secret = form_decode(secret).ok_or_else(malformed)?;
    if id.is_empty() {
        return Err(malformed());
    }
    if id.len() > MAX_CREDENTIAL_LEN || secret.len() > MAX_CREDENTIAL_LEN {
        return Err(OAuthError::invalid_client("the client credentials are too long"));
    }
    Ok(Some((id, secret)))
}

/// Reads the credentials of a request: at most one method.
pub fn extract(request: &Request) -> Result<Credentials, OAuthError> {
    let params = &request.params;
    let basic = request.authorization.as_deref().map(basic_credentials).transpose()?.flatten();
    let form_id = params.get("client_id");
    let form_secret = params.get("client_secret");
    let assertion = params.get("client_assertion");
    let methods = [basic.is_some(), form_secret.is_some(), assertion.is_some()].iter().filter(|m| **m).count();
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "the request uses more than one client authentication method; use exactly one",
        ));
    }
    if [form_id, form_secret].iter().flatten().any(|v| v.len() > MAX_CREDENTIAL_LEN) {
        return Err(OAuthError::invalid_client("the client credentials are too long"));
    }
    if let Some((id, secret)) = basic {
        if form_id.is_some_and(|f| f != id) {
            return Err(OAuthError::invalid_request("client_id in the body differs from the Basic credentials"));
        }
        return Ok(Credentials::Basic { id, secret });
    }
    if let Some(secret) = form_secret {
        let id = form_id.ok_or_else(|| OAuthError::invalid_request("client_secret was sent without client_id"))?;
        return Ok(Credentials::Post { id: id.to_string(), secret: secret.to_string() });
    }
    if let Some(assertion) = assertion {
        match params.get("client_assertion_type") {
            Some(JWT_BEARER) => {}
            Some(_) => return Err(OAuthError::invalid_request(format!("client_assertion_type must be {JWT_BEARER}"))),
            None => return Err(OAuthError::invalid_request("client_assertion_type is missing")),
        }
        return Ok(Credentials::Assertion { id: form_id.map(str::to_string), assertion: assertion.to_string() });
    }
    Ok(match form_id {
        Some(id) => Credentials::IdOnly { id: id.to_string() },
        None => Credentials::Nothing,
    })
}

/// Who called an endpoint.
#[derive(Debug)]
pub enum Caller {
    Client(Box<Client>),
    /// A resource server with its own secret (introspection only).
    Resource(ResourceServer),
}

/// Answers `invalid_client`, carrying the failure for the HTTP layer,
/// which counts it against the caller's IP before anything is written and
/// audits it within `audit::FailureSample`'s bounds: nothing here writes,
/// so a flood of bad credentials costs no database write each.
fn refuse(request: &Request, credentials: &Credentials, client_id: Option<&str>, reason: &str) -> OAuthError {
    let method = match credentials {
        Credentials::Assertion { .. } => "client_assertion",
        other => other.method(),
    };
    let audit = AuthFailure {
        action: "client.auth_failed",
        target: client_id.or(credentials.client_id()).map(str::to_string),
        subject: request.ip.as_deref().and_then(|ip| ip.parse().ok()).map(crate::sessions::ip_subject),
        ip: request.ip.clone(),
        request_id: current_request_id(),
        details: serde_json::json!({ "reason": reason, "method": credentials.method() }),
        occurred_at: None,
    };
    OAuthError {
        failed_auth: Some(Box::new(super::error::FailedAuth { method, audit })),
        ..OAuthError::invalid_client(format!("Client authentication failed: {reason}"))
    }
}

/// Authenticates the client of `request`. `allow_resource` admits
/// resource servers (introspection). An assertion's `aud` is the issuer or
/// the token endpoint at every endpoint (see `assertion::verify`).
pub fn authenticate(
    conn: &mut DbConn,
    server: &AuthServer,
    request: &Request,
    allow_resource: bool,
) -> Result<Caller, OAuthError> {
    let credentials = extract(request)?;
    let fail = |reason: &str| Err(refuse(request, &credentials, None, reason));
    if let (true, Credentials::Basic { id, secret } | Credentials::Post { id, secret }) = (allow_resource, &credentials)
        && id.starts_with("rs_")
    {
        return match resources::authenticate(conn, &server.cache, id, secret)? {
            Some(rs) => Ok(Caller::Resource(rs)),
            None => fail("unknown resource server or wrong secret"),
        };
    }
    let id = match &credentials {
        Credentials::Nothing => return fail("no client credentials were presented"),
        Credentials::Assertion { id: None, assertion } => match assertion::unverified_issuer(assertion) {
            Some(iss) if iss.len() <= MAX_CREDENTIAL_LEN => iss,
            _ => return fail("the assertion names no client (iss)"),
        },
        other => other.client_id().unwrap_or_default().to_string(),
    };
    // From here on, failures are recorded against the client named.
    let fail = |reason: &str| Err(refuse(request, &credentials, Some(&id), reason));
    let client = match clients::find_cached(conn, server, &id).map_err(|e| match e {
        clients::ClientError::Store(s) => OAuthError::from(s),
        other => OAuthError::server_error(&other),
    })? {
        Some(c) => c,
        None => return fail("unknown client"),
    };
    let registered = client.token_endpoint_auth_method;
    let method_ok = match &credentials {
        // RFC 6749 §2.3.1 lets a server take the secret either way; the
        // guides send it in the body whatever the client registered.
        Credentials::Basic { .. } | Credentials::Post { .. } => {
            matches!(registered, AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost)
        }
        Credentials::Assertion { .. } => {
            matches!(registered, AuthMethod::ClientSecretJwt | AuthMethod::PrivateKeyJwt)
        }
        Credentials::IdOnly { .. } => registered == AuthMethod::None,
        Credentials::Nothing => false,
    };
    if !method_ok {
        return fail(&format!("the client is registered for {}", registered.as_str()));
    }
    let clock = server.clock.as_ref();
    match &credentials {
        Credentials::Basic { secret, .. } | Credentials::Post { secret, .. } => {
            if !clients::matches_one(
                &clients::live_secrets_cached(conn, &server.cache, clock, &client.client_id)?,
                secret,
            ) {
                return fail("wrong client secret (or it has expired)");
            }
        }
        Credentials::Assertion { assertion, .. } => {
            if let Credentials::Assertion { id: Some(form_id), .. } = &credentials
                && assertion::unverified_issuer(assertion).as_deref() != Some(form_id.as_str())
            {
                return fail("client_id differs from the assertion's iss");
            }
            let secrets: Vec<Vec<u8>> = if registered == AuthMethod::ClientSecretJwt {
                clients::live_secrets_cached(conn, &server.cache, clock, &client.client_id)?
                    .iter()
                    .filter_map(|s| s.open(server.keys.master()))
                    .collect()
            } else {
                Vec::new()
            };
            let audiences = [server.issuer.clone(), server.url(super::TOKEN_PATH)];
            match assertion::verify(conn, clock, &client, assertion, &audiences, &secrets) {
                Ok(()) => {}
                Err(Ok(reason)) => return fail(&reason),
                Err(Err(store)) => return Err(store.into()),
            }
        }
        Credentials::IdOnly { .. } | Credentials::Nothing => {}
    }
    // Only once the caller proved it holds the client's credentials: that
    // a client is disabled — or that its owner's account is (the one
    // answer for both) — is nobody else's business.
    if !clients::usable(conn, &server.cache, &client)? {
        return fail("the client is disabled");
    }
    Ok(Caller::Client(Box::new(client)))
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use proptest::prelude::*;

    use super::basic_credentials;

    /// What RFC 6749 §2.3.1 says a client sends: id and secret
    /// form-urlencoded, joined by `:`, in base64.
    fn header(scheme: &str, id: &str, secret: &str) -> String {
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let raw = format!("{}:{}", encode(id), encode(secret));
        format!("{scheme} {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }

    proptest! {
        #[test]
        fn any_header_parses_without_panic(text in ".*", bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = basic_credentials(&text);
            let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let _ = basic_credentials(&format!("Basic {b64}"));
        }

        #[test]
        fn form_urlencoded_id_and_secret_round_trip(
            id in ".{1,64}",
            secret in ".{0,128}",
            scheme in prop_oneof![Just("Basic"), Just("basic"), Just("BASIC")],
        ) {
            prop_assert_eq!(basic_credentials(&header(scheme, &id, &secret)).unwrap(), Some((id, secret)));
        }

        #[test]
        fn an_empty_id_or_another_scheme_is_refused(secret in ".{0,32}") {
            prop_assert!(basic_credentials(&header("Basic", "", &secret)).is_err());
            prop_assert!(basic_credentials(&header("Bearer", "x", &secret)).is_err());
        }
    }

    #[test]
    fn plus_is_a_space_and_percent_a_byte() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("my+client:s%3Ae+cret%25");
        let parsed = basic_credentials(&format!("Basic {b64}")).unwrap();
        assert_eq!(parsed, Some(("my client".to_string(), "s:e cret%".to_string())));
        assert!(basic_credentials("Basic").is_err());
        assert!(basic_credentials("Basic !!!").is_err());
    }
}
