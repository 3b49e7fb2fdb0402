//! OAuth helpers: register clients and resource servers, post forms, sign
//! client assertions, and verify access tokens the way a microservice
//! would (JWKS over HTTP, algorithm pinned by the key).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, TokenData, Validation};
use serde_json::{Value, json};
use tessera::audit::Actor;
use tessera::clock::Clock;
use tessera::oauth::clients::{self, AuthMethod, NewClient};
use tessera::oauth::resources::{self, NewResource, TokenAlg};

use super::TestApp;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A registered client and its one-time secret.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

impl TestClient {
    pub fn secret(&self) -> &str {
        self.secret.as_deref().expect("a client with a secret")
    }
}

/// A registered resource server and its one-time secret.
#[derive(Debug, Clone)]
pub struct TestResource {
    pub id: String,
    pub identifier: String,
    pub secret: String,
}

/// A client's private key for `private_key_jwt`, with its public JWK.
pub struct ClientKey {
    pub alg: Algorithm,
    pub kid: String,
    pub key: EncodingKey,
    pub public: Jwk,
}

impl ClientKey {
    pub fn generate(alg: Algorithm, kid: &str) -> Self {
        let key = match alg {
            Algorithm::RS256 => {
                let der = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .unwrap()
                    .as_der()
                    .unwrap()
                    .as_ref()
                    .to_vec();
                let body = base64::engine::general_purpose::STANDARD.encode(der);
                let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
                EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
            }
            Algorithm::ES256 => {
                let der = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap().to_pkcs8v1().unwrap();
                EncodingKey::from_ec_der(der.as_ref())
            }
            other => panic!("no test key for {other:?}"),
        };
        let mut public = Jwk::from_encoding_key(&key, alg).unwrap();
        public.common.key_id = Some(kid.to_string());
        Self { alg, kid: kid.to_string(), key, public }
    }

    pub fn jwks_json(keys: &[&ClientKey]) -> String {
        json!({ "keys": keys.iter().map(|k| &k.public).collect::<Vec<_>>() }).to_string()
    }
}

impl TestApp {
    pub fn create_client(&self, new: NewClient) -> TestClient {
        let (client, secret) =
            clients::create(&mut self.conn(), &self.clock, &self.master_key, new, Actor::Cli).expect("create client");
        TestClient { id: client.client_id, secret: secret.map(|s| s.expose().to_string()) }
    }

    /// A confidential client for the client credentials grant.
    pub fn cc_client(&self, method: AuthMethod, scope: &str, audiences: &[&str]) -> TestClient {
        self.create_client(NewClient {
            name: "Billing backend".into(),
            auth_method: Some(method),
            scope: scope.into(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            ..NewClient::default()
        })
    }

    pub fn create_resource(&self, identifier: &str, alg: TokenAlg, scope: &str) -> TestResource {
        let new = NewResource { identifier, name: "Orders API", alg, scope };
        let (rs, secret) = resources::create(&mut self.conn(), &self.clock, &self.master_key, new, Actor::Cli)
            .expect("create resource server");
        TestResource { id: rs.id, identifier: rs.identifier, secret: secret.expose().to_string() }
    }

    /// POSTs a form, with Basic credentials if given.
    pub fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::blocking::Response {
        let mut req = self.client.post(self.url(path)).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        req.send().expect("POST form")
    }

    /// A client credentials token through client_secret_basic; panics unless 200.
    pub fn cc_token(&self, client: &TestClient, extra: &[(&str, &str)]) -> Value {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        let res = self.post_form("/oauth/token", &form, Some((&client.id, client.secret())));
        let status = res.status();
        let body: Value = res.json().unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }

    pub fn introspect(&self, token: &str, basic: (&str, &str)) -> Value {
        let res = self.post_form("/oauth/introspect", &[("token", token)], Some(basic));
        assert_eq!(res.status(), 200);
        res.json().unwrap()
    }

    pub fn jwks(&self) -> JwkSet {
        let res = self.get("/.well-known/jwks.json");
        assert_eq!(res.status(), 200);
        res.json().unwrap()
    }

    pub fn issuer(&self) -> String {
        self.base_url.clone()
    }

    pub fn token_endpoint(&self) -> String {
        self.url("/oauth/token")
    }

    pub fn default_audience(&self) -> String {
        format!("{}/v1", self.base_url)
    }

    /// Claims for a client assertion valid now for the token endpoint.
    pub fn assertion_claims(&self, client_id: &str) -> Value {
        let now = self.clock.now().timestamp();
        json!({
            "iss": client_id,
            "sub": client_id,
            "aud": self.token_endpoint(),
            "iat": now,
            "exp": now + 120,
            "jti": tessera::crypto::random_base62(20),
        })
    }
}

/// A client assertion signed HS256 with `secret`.
pub fn hs256_assertion(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// A client assertion signed with `key`, naming its kid.
pub fn key_assertion(key: &ClientKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.key).unwrap()
}

/// An unsigned JWT (`alg: none`).
pub fn unsigned_jwt(claims: &Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "JWT" })), b64(claims))
}

/// Verifies an access token as a resource server would: by the JWKS
/// (asymmetric) or its shared secret (HS256), checking signature, `typ`,
/// `iss`, `aud` and `exp`.
pub fn verify_access_token(app: &TestApp, token: &str, audience: &str, hs256_secret: Option<&str>) -> TokenData<Value> {
    let header = jsonwebtoken::decode_header(token).expect("a JWT");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 typ");
    let kid = header.kid.clone().expect("kid");
    let (alg, key) = match hs256_secret {
        Some(secret) => (Algorithm::HS256, DecodingKey::from_secret(secret.as_bytes())),
        None => {
            let set = app.jwks();
            let jwk = set.find(&kid).expect("the kid is published").clone();
            let alg: Algorithm = jwk.common.key_algorithm.unwrap().to_string().parse().unwrap();
            (alg, DecodingKey::from_jwk(&jwk).unwrap())
        }
    };
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[app.issuer()]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    // jsonwebtoken checks exp against the wall clock; the server's clock
    // may be ahead of it, so exp is checked against that instead.
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).expect("the token verifies");
    assert!(data.claims["exp"].as_i64().unwrap() > app.clock.now().timestamp(), "not expired");
    data
}
