//! Dynamic client registration (RFC 7591) and its management (RFC 7592).
//!
//! Who may register is the operator's choice (`TESSERA_REGISTRATION`):
//! nobody, holders of an initial access token an admin made, or anyone. A
//! self-registered client gets only what the registration policy allows:
//! scopes from `TESSERA_REGISTRATION_SCOPES`, no audience, no owner (so it
//! speaks for nobody on `/v1`). Every metadata field goes through
//! `clients::create`'s validation, as the CLI's do. The registration
//! access token that manages the client is 256 random bits, kept as a
//! fingerprint, and works only on its own client.

use chrono::{DateTime, Utc};
use diesel::Connection;
use serde::Serialize;
use serde_json::{Map, Value};

use super::AuthServer;
use super::clients::{self, AuthMethod, Client, ClientChanges, ClientError, GrantType, NewClient, SigningAlg};
use crate::audit::{self, Actor, AuditEvent};
use crate::crypto::{MasterKey, SECRET_LEN_256_BITS, Secret, constant_time_eq, fingerprint, random_base62};
use crate::domain::scope::Scopes;
use crate::store::registrations::{self, InitialAccessTokenRow, RegistrationRow};
use crate::store::{DbConn, StoreError};

/// The registration endpoint, relative to the issuer; a client's
/// management URI is this plus `/<client_id>`.
pub const REGISTER_PATH: &str = "/oauth/register";

/// What a self-registered client may have unless the operator says
/// otherwise (`TESSERA_REGISTRATION_SCOPES`).
pub const DEFAULT_REGISTRATION_SCOPES: &str = "openid profile email offline_access";

/// The name a client that sends no `client_name` is shown under.
pub const UNNAMED_CLIENT: &str = "Unnamed application";

/// Who may register clients (`TESSERA_REGISTRATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationMode {
    /// Nobody: `POST /oauth/register` answers 403 and discovery omits it.
    Closed,
    /// Whoever presents an initial access token an admin made.
    Token,
    /// Anyone (rate-limited per IP).
    Open,
}

impl RegistrationMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "closed" => Some(Self::Closed),
            "token" => Some(Self::Token),
            "open" => Some(Self::Open),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Token => "token",
            Self::Open => "open",
        }
    }
}

/// The operator's registration policy, fixed at start.
#[derive(Debug, Clone)]
pub struct RegistrationPolicy {
    pub mode: RegistrationMode,
    /// The most a self-registered client may ask for; what it gets when it
    /// asks for nothing.
    pub scopes: Scopes,
}

/// `admin`, or a namespace's `x:admin`: never a self-registered client's.
pub fn is_admin_scope(scope: &str) -> bool {
    scope == "admin" || scope.ends_with(":admin")
}

/// Checks at start that every registration scope is one anyone's client
/// may have (`clients::SELF_SERVICE_SCOPES`) or one a resource server
/// defines, and never `admin`. The error names the first that is not.
pub fn check_policy_scopes(conn: &mut DbConn, scopes: &Scopes) -> Result<(), String> {
    let defined = super::resources::list(conn)
        .map_err(|e| e.to_string())?
        .iter()
        .fold(Scopes::default(), |all, rs| all.union(&rs.scope));
    for scope in scopes.iter() {
        if is_admin_scope(scope) {
            return Err("a self-registered client never gets an admin scope".into());
        }
        if !clients::SELF_SERVICE_SCOPES.contains(&scope) && !defined.contains(scope) {
            return Err(format!(
                "`{scope}` is neither a self-service scope ({}) nor one a resource server defines",
                clients::SELF_SERVICE_SCOPES.join(" ")
            ));
        }
    }
    Ok(())
}

/// A registration or management request refused (RFC 7591 §3.2.2, RFC
/// 7592 §2). No message holds a secret or echoes a field's value.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    /// 400 `invalid_redirect_uri`: a redirect or post-logout URI.
    #[error("{0}")]
    InvalidRedirectUri(String),
    /// 400 `invalid_client_metadata`: any other field.
    #[error("{0}")]
    InvalidClientMetadata(String),
    /// 403 `access_denied`: registration is closed.
    #[error("client registration is closed on this server")]
    Closed,
    /// 401 `invalid_token`: a missing, wrong, expired, used-up or revoked
    /// initial access token, or a registration access token that is not
    /// this client's (the same for an unknown client id).
    #[error("the access token is missing, invalid, expired or not for this client")]
    InvalidToken,
    /// 429, from the per-IP limit (set by the HTTP layer).
    #[error("{message}")]
    RateLimited { retry_after: u64, message: String },
    /// 503 `temporarily_unavailable`: the shared rate limiter cannot be
    /// reached, and registration fails closed.
    #[error("{message}")]
    Unavailable { retry_after: u64, message: String },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RegistrationError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<diesel::result::Error> for RegistrationError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<ClientError> for RegistrationError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::InvalidRedirectUri { message, .. } => Self::InvalidRedirectUri(message),
            ClientError::Invalid { message, .. } | ClientError::Forbidden(message) => {
                Self::InvalidClientMetadata(message)
            }
            ClientError::UnknownClient => Self::InvalidToken,
            ClientError::Store(s) => Self::Store(s),
            other => Self::Store(StoreError::Internal(other.to_string())),
        }
    }
}

fn metadata_error(message: impl Into<String>) -> RegistrationError {
    RegistrationError::InvalidClientMetadata(message.into())
}

/// Client metadata as sent (RFC 7591 §2), each field typed; unknown
/// fields are ignored, as §2 asks.
#[derive(Debug, Default)]
struct Metadata {
    client_id: Option<String>,
    redirect_uris: Vec<String>,
    client_name: Option<String>,
    grant_types: Option<Vec<GrantType>>,
    auth_method: Option<AuthMethod>,
    scope: Option<Scopes>,
    jwks: Option<Value>,
    post_logout_redirect_uris: Vec<String>,
    id_token_alg: Option<SigningAlg>,
    require_pkce: Option<bool>,
}

/// A field that is present and not null.
fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).filter(|v| !v.is_null())
}

fn string_field(map: &Map<String, Value>, name: &str) -> Result<Option<String>, RegistrationError> {
    match field(map, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(metadata_error(format!("`{name}` must be a string"))),
    }
}

fn strings_field(map: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, RegistrationError> {
    let Some(value) = field(map, name) else { return Ok(None) };
    let bad = || metadata_error(format!("`{name}` must be an array of strings"));
    let Value::Array(items) = value else { return Err(bad()) };
    items.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(bad)).collect::<Result<_, _>>().map(Some)
}

/// Parses the JSON body of a registration or a PUT.
fn parse_metadata(body: &[u8]) -> Result<Metadata, RegistrationError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| metadata_error("the body is not a JSON object of client metadata"))?;
    let Value::Object(map) = value else {
        return Err(metadata_error("the body is not a JSON object of client metadata"));
    };
    if field(&map, "jwks_uri").is_some() {
        return Err(metadata_error(
            "jwks_uri is not supported: this server fetches no URLs; send the keys themselves as `jwks`",
        ));
    }
    if let Some(types) = strings_field(&map, "response_types")?
        && types.iter().any(|t| t != "code")
    {
        return Err(metadata_error("the only response type this server supports is `code`"));
    }
    let grant_types = strings_field(&map, "grant_types")?
        .map(|names| {
            names
                .iter()
                .map(|g| {
                    GrantType::parse(g).ok_or_else(|| {
                        metadata_error(format!(
                            "grant_types: only {} are supported",
                            GrantType::ALL.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", ")
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let auth_method = string_field(&map, "token_endpoint_auth_method")?
        .map(|m| {
            AuthMethod::parse(&m).ok_or_else(|| {
                metadata_error(format!(
                    "token_endpoint_auth_method must be one of {}",
                    AuthMethod::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })
        })
        .transpose()?;
    let scope = string_field(&map, "scope")?
        .map(|s| Scopes::parse(&s).map_err(|e| metadata_error(format!("scope: {e}"))))
        .transpose()?;
    let id_token_alg = string_field(&map, "id_token_signed_response_alg")?
        .map(|a| {
            SigningAlg::parse(&a)
                .ok_or_else(|| metadata_error("id_token_signed_response_alg must be RS256, ES256 or EdDSA"))
        })
        .transpose()?;
    let require_pkce = match field(&map, "require_pkce") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(metadata_error("`require_pkce` must be true or false")),
    };
    let jwks = match field(&map, "jwks") {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => return Err(metadata_error("`jwks` must be a JWK Set (a JSON object with `keys`)")),
    };
    Ok(Metadata {
        client_id: string_field(&map, "client_id")?,
        redirect_uris: strings_field(&map, "redirect_uris")?.unwrap_or_default(),
        client_name: string_field(&map, "client_name")?,
        grant_types,
        auth_method,
        scope,
        jwks,
        post_logout_redirect_uris: strings_field(&map, "post_logout_redirect_uris")?.unwrap_or_default(),
        id_token_alg,
        require_pkce,
    })
}

/// The scope a self-registered client gets: what it asked for, which must
/// lie within the policy's scopes, or all of them.
fn granted_scope(policy: &RegistrationPolicy, asked: Option<&Scopes>) -> Result<Scopes, RegistrationError> {
    let Some(asked) = asked.filter(|s| !s.is_empty()) else { return Ok(policy.scopes.clone()) };
    if !asked.is_subset(&policy.scopes) {
        return Err(metadata_error(format!(
            "scope: a self-registered client may not have {}; it may ask for {}",
            asked.missing_from(&policy.scopes),
            policy.scopes
        )));
    }
    Ok(asked.clone())
}

impl Metadata {
    /// The client registration would make: no owner, no audience, the
    /// RFC 7591 defaults (`authorization_code`, `client_secret_basic`).
    fn into_new_client(self, policy: &RegistrationPolicy) -> Result<NewClient, RegistrationError> {
        let scope = granted_scope(policy, self.scope.as_ref())?;
        let method = self.auth_method.unwrap_or(AuthMethod::ClientSecretBasic);
        Ok(NewClient {
            name: self.client_name.unwrap_or_else(|| UNNAMED_CLIENT.to_string()),
            public: method == AuthMethod::None,
            redirect_uris: self.redirect_uris,
            grant_types: self.grant_types.unwrap_or_else(|| vec![GrantType::AuthorizationCode]),
            scope: scope.to_string(),
            audiences: Vec::new(),
            auth_method: Some(method),
            jwks: self.jwks.map(|j| j.to_string()),
            owner_id: None,
            require_pkce: self.require_pkce,
            id_token_alg: self.id_token_alg,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
        })
    }
}

/// A client's registered metadata (RFC 7591 §3.2.1), without secrets.
#[derive(Debug, Serialize)]
pub struct ClientMetadata {
    pub client_id: String,
    pub client_id_issued_at: i64,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<&'static str>,
    pub token_endpoint_auth_method: AuthMethod,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<SigningAlg>,
    pub require_pkce: bool,
    pub registration_client_uri: String,
}

impl ClientMetadata {
    fn of(server: &AuthServer, client: Client) -> Self {
        let code = client.allows_grant(GrantType::AuthorizationCode);
        Self {
            client_id_issued_at: client.created_at.timestamp(),
            registration_client_uri: server.url(&format!("{REGISTER_PATH}/{}", client.client_id)),
            client_id: client.client_id,
            client_name: client.name,
            redirect_uris: client.redirect_uris,
            grant_types: client.grant_types,
            response_types: if code { vec!["code"] } else { vec![] },
            token_endpoint_auth_method: client.token_endpoint_auth_method,
            scope: client.scope.to_string(),
            jwks: client.jwks,
            post_logout_redirect_uris: client.post_logout_redirect_uris,
            id_token_signed_response_alg: client.id_token_alg,
            require_pkce: client.require_pkce,
        }
    }
}

/// The answer to a registration: the metadata, the client's secret (if it
/// uses one) and the registration access token, each shown this once.
#[derive(Debug, Serialize)]
pub struct Registered {
    #[serde(flatten)]
    pub metadata: ClientMetadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// 0: the secret does not expire (RFC 7591 §3.2.1); only with a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    pub registration_access_token: String,
}

/// One registration request, stripped of HTTP.
#[derive(Debug)]
pub struct RegistrationRequest {
    /// The bearer token of the `Authorization` header, if any.
    pub bearer: Option<String>,
    pub body: Vec<u8>,
    pub ip: Option<String>,
}

/// The bearer token of an `Authorization` header (`Bearer <token>`, the
/// scheme in any case), if that is what it holds.
pub fn bearer_token(header: Option<&str>) -> Option<String> {
    let (scheme, token) = header?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// `POST /oauth/register`: checks the policy and the initial access
/// token, validates the metadata as `clients::create` does, and registers
/// the client with its registration access token, in one transaction (a
/// refused registration uses up nothing).
pub fn register(
    conn: &mut DbConn,
    server: &AuthServer,
    master: &MasterKey,
    request: &RegistrationRequest,
) -> Result<Registered, RegistrationError> {
    let policy = &server.registration;
    let initial_token = match policy.mode {
        RegistrationMode::Closed => return Err(RegistrationError::Closed),
        RegistrationMode::Open => None,
        RegistrationMode::Token => {
            let bearer = request.bearer.as_deref().ok_or(RegistrationError::InvalidToken)?;
            let row = registrations::find_initial_token_by_fingerprint(conn, &fingerprint(bearer))?
                .ok_or(RegistrationError::InvalidToken)?;
            Some(row.id)
        }
    };
    let new = parse_metadata(&request.body)?.into_new_client(policy)?;
    let clock = server.clock.as_ref();
    let now = clock.now();
    let token = Secret::new(random_base62(SECRET_LEN_256_BITS));
    conn.transaction(|conn| {
        if let Some(id) = &initial_token
            && !registrations::use_initial_token(conn, id, now.naive_utc())?
        {
            return Err(RegistrationError::InvalidToken);
        }
        let (client, secret) = clients::create(conn, clock, master, new, Actor::System)?;
        let registered_by = initial_token.clone().unwrap_or_else(|| RegistrationMode::Open.as_str().to_string());
        registrations::insert(
            conn,
            &RegistrationRow {
                client_id: client.client_id.clone(),
                registered_by: registered_by.clone(),
                token_fingerprint: fingerprint(token.expose()),
                created_at: now.naive_utc(),
            },
        )?;
        let mut event = AuditEvent::new(Actor::System, "client.registered", Some(&client.client_id));
        event.ip = request.ip.as_deref();
        event.details = serde_json::json!({
            "policy": policy.mode.as_str(),
            "initial_access_token": initial_token,
            "auth_method": client.token_endpoint_auth_method,
            "scope": client.scope.to_string(),
        });
        audit::record(conn, clock, event)?;
        let has_secret = secret.is_some();
        Ok(Registered {
            metadata: ClientMetadata::of(server, client),
            client_secret: secret.map(|s| s.expose().to_string()),
            client_secret_expires_at: has_secret.then_some(0),
            registration_access_token: token.expose().to_string(),
        })
    })
}

/// Whether `client_id` registered itself (consent pages say so).
pub fn is_self_registered(conn: &mut DbConn, client_id: &str) -> Result<bool, StoreError> {
    Ok(registrations::find(conn, client_id)?.is_some())
}

/// The client whose registration access token `bearer` is, if it is
/// `client_id`'s. An unknown client, a client registered otherwise and
/// another client's token all read as `InvalidToken`, after the same
/// constant-time comparison, so the answer tells nothing about which ids
/// exist.
fn authenticate(conn: &mut DbConn, client_id: &str, bearer: Option<&str>) -> Result<Client, RegistrationError> {
    let bearer = bearer.ok_or(RegistrationError::InvalidToken)?;
    let presented = fingerprint(bearer);
    let stored = registrations::find(conn, client_id)?;
    let expected = stored.as_ref().map_or_else(|| fingerprint("no registration"), |r| r.token_fingerprint.clone());
    if !constant_time_eq(presented.as_bytes(), expected.as_bytes()) || stored.is_none() {
        return Err(RegistrationError::InvalidToken);
    }
    // A client an admin disabled is not its registration token's to manage
    // any more (the same 401, so the token learns nothing from it).
    clients::find(conn, client_id)?.filter(|c| !c.disabled).ok_or(RegistrationError::InvalidToken)
}

/// `GET /oauth/register/{client_id}` (RFC 7592 §2.1): the current
/// metadata, no secret.
pub fn read(
    conn: &mut DbConn,
    server: &AuthServer,
    client_id: &str,
    bearer: Option<&str>,
) -> Result<ClientMetadata, RegistrationError> {
    Ok(ClientMetadata::of(server, authenticate(conn, client_id, bearer)?))
}

/// `PUT /oauth/register/{client_id}` (RFC 7592 §2.2): replaces the
/// metadata, under the same validation and the same policy as
/// registration. Omitted fields are emptied (RFC 7592), except those a
/// client cannot change — `grant_types`, `token_endpoint_auth_method`,
/// `jwks` — which must be omitted or equal to what is registered, and
/// `id_token_signed_response_alg`, which is kept when omitted.
pub fn replace(
    conn: &mut DbConn,
    server: &AuthServer,
    client_id: &str,
    bearer: Option<&str>,
    body: &[u8],
) -> Result<ClientMetadata, RegistrationError> {
    let client = authenticate(conn, client_id, bearer)?;
    let meta = parse_metadata(body)?;
    if meta.client_id.as_deref() != Some(client_id) {
        return Err(metadata_error("the body must carry this client's client_id"));
    }
    let fixed = |what: &str| metadata_error(format!("{what} cannot be changed; register a new client instead"));
    if meta.grant_types.as_ref().is_some_and(|g| {
        let mut g = g.clone();
        g.sort_by_key(|g| g.as_str());
        g.dedup();
        g != client.grant_types
    }) {
        return Err(fixed("grant_types"));
    }
    if meta.auth_method.is_some_and(|m| m != client.token_endpoint_auth_method) {
        return Err(fixed("token_endpoint_auth_method"));
    }
    if meta.jwks.is_some() && meta.jwks != client.jwks {
        return Err(fixed("jwks"));
    }
    // No scope asked: what it has, within today's policy (an admin may
    // have narrowed it; a PUT must not widen it back).
    let scope = match meta.scope.as_ref().filter(|s| !s.is_empty()) {
        Some(asked) => granted_scope(&server.registration, Some(asked))?,
        None => client.scope.intersection(&server.registration.scopes),
    };
    let name = meta.client_name.unwrap_or_else(|| UNNAMED_CLIENT.to_string());
    // A new name or new addresses forget the consents people gave
    // (`clients::update`, whoever changes the client): whoever holds the
    // registration token may not move where codes go, nor rename the app,
    // under consents given before.
    let changes = ClientChanges {
        name: Some(name),
        redirect_uris: Some(meta.redirect_uris),
        scope: Some(scope.to_string()),
        audiences: Some(Vec::new()),
        require_pkce: Some(meta.require_pkce.unwrap_or(true)),
        id_token_alg: meta.id_token_alg,
        post_logout_redirect_uris: Some(meta.post_logout_redirect_uris),
    };
    let updated =
        clients::update(conn, server.clock.as_ref(), server.keys.master(), client_id, changes, Actor::System)?;
    Ok(ClientMetadata::of(server, updated))
}

/// `DELETE /oauth/register/{client_id}` (RFC 7592 §2.3): deletes the
/// client the way an owner's delete does (its tokens end, consents are
/// forgotten); its registration access token goes with it.
pub fn delete(
    conn: &mut DbConn,
    server: &AuthServer,
    client_id: &str,
    bearer: Option<&str>,
) -> Result<(), RegistrationError> {
    authenticate(conn, client_id, bearer)?;
    clients::delete(conn, server.clock.as_ref(), client_id, Actor::System)?;
    Ok(())
}

/// An initial access token as admins see it: never the token itself.
#[derive(Debug, Clone, Serialize)]
pub struct InitialAccessToken {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_by: Option<String>,
}

impl InitialAccessToken {
    fn from_row(row: InitialAccessTokenRow) -> Self {
        Self {
            id: row.id,
            created_at: row.created_at.and_utc(),
            expires_at: row.expires_at.map(|t| t.and_utc()),
            max_uses: row.max_uses,
            uses: row.uses,
            revoked_at: row.revoked_at.map(|t| t.and_utc()),
            created_by: row.created_by,
        }
    }

    /// Whether a registration could use it at `now`.
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.state(now) == "live"
    }

    /// `live`, `expired`, `used up` or `revoked`, for lists.
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else if self.max_uses.is_some_and(|m| self.uses >= m) {
            "used up"
        } else {
            "live"
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitialTokenError {
    #[error("{0}")]
    Invalid(String),
    #[error("no live initial access token with this id")]
    Unknown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for InitialTokenError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(e.into())
    }
}

/// The longest an initial access token may live, and the most uses.
pub const MAX_INITIAL_TOKEN_TTL_SECS: u64 = 365 * 24 * 3600;
pub const MAX_INITIAL_TOKEN_USES: i64 = 1_000_000;

/// Makes an initial access token (an admin's or the operator's act); the
/// token is returned here and never again.
pub fn create_initial_token(
    conn: &mut DbConn,
    clock: &dyn crate::clock::Clock,
    expires_in: Option<u64>,
    max_uses: Option<i64>,
    actor: Actor,
) -> Result<(InitialAccessToken, Secret), InitialTokenError> {
    if expires_in.is_some_and(|s| s == 0 || s > MAX_INITIAL_TOKEN_TTL_SECS) {
        return Err(InitialTokenError::Invalid(format!(
            "expires-in must be 1 to {MAX_INITIAL_TOKEN_TTL_SECS} seconds"
        )));
    }
    if max_uses.is_some_and(|m| !(1..=MAX_INITIAL_TOKEN_USES).contains(&m)) {
        return Err(InitialTokenError::Invalid(format!("max-uses must be 1 to {MAX_INITIAL_TOKEN_USES}")));
    }
    let now = clock.now();
    let token = Secret::new(random_base62(SECRET_LEN_256_BITS));
    let created_by = match &actor {
        Actor::User { id, .. } => Some(id.clone()),
        Actor::Cli => Some("cli".to_string()),
        Actor::System => None,
    };
    let row = InitialAccessTokenRow {
        id: crate::crypto::public_id("iat"),
        fingerprint: fingerprint(token.expose()),
        created_at: now.naive_utc(),
        expires_at: expires_in.map(|s| (now + crate::clock::span(std::time::Duration::from_secs(s))).naive_utc()),
        max_uses,
        uses: 0,
        revoked_at: None,
        created_by,
    };
    conn.transaction(|conn| {
        registrations::insert_initial_token(conn, &row)?;
        let mut event = AuditEvent::new(actor, "initial_access_token.created", Some(&row.id));
        event.details = serde_json::json!({ "expires_at": row.expires_at, "max_uses": max_uses });
        audit::record(conn, clock, event)
    })?;
    Ok((InitialAccessToken::from_row(row), token))
}

/// Every initial access token, newest first.
pub fn list_initial_tokens(conn: &mut DbConn) -> Result<Vec<InitialAccessToken>, InitialTokenError> {
    Ok(registrations::list_initial_tokens(conn)?.into_iter().map(InitialAccessToken::from_row).collect())
}

/// Revokes an initial access token; clients it registered stay.
pub fn revoke_initial_token(
    conn: &mut DbConn,
    clock: &dyn crate::clock::Clock,
    id: &str,
    actor: Actor,
) -> Result<(), InitialTokenError> {
    conn.transaction(|conn| {
        if !registrations::revoke_initial_token(conn, id, clock.now().naive_utc())? {
            return Err(InitialTokenError::Unknown);
        }
        audit::record(conn, clock, AuditEvent::new(actor, "initial_access_token.revoked", Some(id)))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> RegistrationPolicy {
        RegistrationPolicy { mode: RegistrationMode::Open, scopes: Scopes::from_stored(DEFAULT_REGISTRATION_SCOPES) }
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc".into()));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc".into()));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn metadata_fields_are_typed() {
        let m = parse_metadata(br#"{"redirect_uris":["https://a.example/cb"],"scope":"openid","x":1}"#).unwrap();
        assert_eq!(m.redirect_uris, ["https://a.example/cb"]);
        let new = m.into_new_client(&policy()).unwrap();
        assert_eq!((new.scope.as_str(), new.owner_id, new.audiences.len()), ("openid", None, 0));
        for bad in [
            &br#"[]"#[..],
            br#"{"redirect_uris":"https://a.example/cb"}"#,
            br#"{"grant_types":["implicit"]}"#,
            br#"{"response_types":["token"]}"#,
            br#"{"jwks_uri":"https://a.example/jwks"}"#,
            br#"{"require_pkce":"no"}"#,
            br#"{"id_token_signed_response_alg":"HS256"}"#,
        ] {
            assert!(matches!(parse_metadata(bad), Err(RegistrationError::InvalidClientMetadata(_))));
        }
        let wide = parse_metadata(br#"{"scope":"openid admin"}"#).unwrap();
        assert!(matches!(wide.into_new_client(&policy()), Err(RegistrationError::InvalidClientMetadata(_))));
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,20}".prop_map(Value::String),
            prop::sample::select(vec![
                "code",
                "token",
                "none",
                "client_secret_basic",
                "private_key_jwt",
                "authorization_code",
                "client_credentials",
                "refresh_token",
                "openid",
                "admin",
                "RS256",
                "https://a.example/cb",
                "http://localhost:8080/cb",
                "http://evil.example/cb",
                "https://a.example/cb#f",
            ])
            .prop_map(|s| Value::String(s.to_string())),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop::sample::select(vec![
                            "redirect_uris",
                            "client_name",
                            "grant_types",
                            "response_types",
                            "token_endpoint_auth_method",
                            "scope",
                            "jwks",
                            "jwks_uri",
                            "post_logout_redirect_uris",
                            "id_token_signed_response_alg",
                            "require_pkce",
                            "client_id",
                            "keys",
                            "other",
                        ]),
                        inner
                    ),
                    0..8
                )
                .prop_map(|pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON body either becomes a client the policy allows or is
        /// refused with one of RFC 7591's two codes; nothing panics.
        #[test]
        fn any_json_is_parsed_or_refused_with_an_rfc_7591_code(value in json()) {
            let body = serde_json::to_vec(&value).unwrap();
            match parse_metadata(&body).and_then(|m| m.into_new_client(&policy())) {
                Ok(new) => {
                    prop_assert!(new.owner_id.is_none() && new.audiences.is_empty());
                    prop_assert!(Scopes::parse(&new.scope).unwrap().is_subset(&policy().scopes));
                }
                Err(RegistrationError::InvalidClientMetadata(_) | RegistrationError::InvalidRedirectUri(_)) => {}
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_metadata(&body);
        }
    }
}
