//! OpenID Connect, driven by a relying party from the ecosystem: the
//! `openidconnect` crate discovers the server, runs the code flow with
//! PKCE and a nonce, validates the ID token against the JWKS, calls
//! UserInfo and refreshes. Then what a relying party must reject, the
//! sign-in parameters (`prompt=login`, `max_age`, `login_hint`) and
//! RP-initiated logout.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenClaims, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use serde_json::Value;
use tessera::oauth::clients::{AuthMethod, GrantType, NewClient, SigningAlg};

use crate::both_backends;
use crate::support::browser::{Person, REDIRECT_URI, hidden_fields, location, param};
use crate::support::oauth::TestClient;
use crate::support::{Backend, TestApp};

type Rp = CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

pub const LOGOUT_URI: &str = "https://app.example.com/signed-out";

fn http() -> openidconnect::reqwest::blocking::Client {
    openidconnect::reqwest::blocking::ClientBuilder::new()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A confidential web app that speaks OpenID Connect.
pub fn oidc_client(app: &TestApp, alg: Option<SigningAlg>) -> TestClient {
    app.create_client(NewClient {
        name: "Photo Printer".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scope: "openid profile email offline_access read".into(),
        auth_method: Some(AuthMethod::ClientSecretBasic),
        id_token_alg: alg,
        post_logout_redirect_uris: vec![LOGOUT_URI.into()],
        ..NewClient::default()
    })
}

/// The relying party, configured by discovery alone.
fn relying_party(app: &TestApp, client: &TestClient) -> Rp {
    let metadata = CoreProviderMetadata::discover(&IssuerUrl::new(app.issuer()).unwrap(), &http()).expect("discovery");
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client.id.clone()),
        client.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap())
}

struct Login {
    url: String,
    state: CsrfToken,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
}

fn login_url(rp: &Rp, scopes: &[&str], extra: &[(&str, &str)]) -> Login {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge);
    for s in scopes {
        req = req.add_scope(Scope::new(s.to_string()));
    }
    for (k, v) in extra {
        req = req.add_extra_param(*k, *v);
    }
    let (url, state, nonce) = req.url();
    Login { url: url.to_string(), state, nonce, verifier }
}

fn exchange(rp: &Rp, code: String, verifier: PkceCodeVerifier) -> CoreTokenResponse {
    rp.exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request(&http())
        .expect("tokens")
}

/// The relying party's ID-token verifier on the test server's clock (the
/// tests move it forward without sleeping).
fn claims_of<'a>(
    app: &TestApp,
    rp: &Rp,
    token: &'a CoreIdToken,
    nonce: &Nonce,
    algs: Vec<CoreJwsSigningAlgorithm>,
) -> Result<&'a CoreIdTokenClaims, openidconnect::ClaimsVerificationError> {
    use tessera::clock::Clock;
    let clock = app.clock.clone();
    let verifier = rp.id_token_verifier().set_allowed_algs(algs).set_time_fn(move || clock.now());
    token.claims(&verifier, nonce)
}

fn at_hash_matches(app: &TestApp, rp: &Rp, id_token: &CoreIdToken, access: &openidconnect::AccessToken) -> bool {
    use tessera::clock::Clock;
    let clock = app.clock.clone();
    let verifier = rp
        .id_token_verifier()
        .set_allowed_algs(vec![id_token.signing_alg().unwrap().clone()])
        .set_time_fn(move || clock.now());
    let claims = id_token.claims(&verifier, |_: Option<&Nonce>| Ok(())).unwrap();
    let expected =
        AccessTokenHash::from_token(access, id_token.signing_alg().unwrap(), id_token.signing_key(&verifier).unwrap())
            .unwrap();
    claims.access_token_hash() == Some(&expected)
}

fn a_relying_party_signs_a_person_in(backend: Backend) {
    let app = TestApp::start(backend);
    let person = app.admin();
    let user = app.user_id(&person.email);
    let client = oidc_client(&app, None);
    let rp = relying_party(&app, &client);
    let login = login_url(&rp, &["openid", "profile", "email", "offline_access"], &[]);
    let code = person.approve(&app, &login.url);
    let tokens = exchange(&rp, code, login.verifier);
    let id_token = tokens.id_token().expect("an ID token with openid");
    let claims = claims_of(&app, &rp, id_token, &login.nonce, vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256])
        .expect("the relying party accepts the ID token");
    assert_eq!(claims.subject().as_str(), user);
    assert_eq!(claims.issuer().as_str(), app.issuer());
    assert_eq!(claims.audiences().iter().map(|a| a.as_str()).collect::<Vec<_>>(), [client.id.as_str()]);
    assert_eq!(claims.email().map(|e| e.as_str()), Some(person.email.as_str()));
    assert_eq!(claims.email_verified(), Some(true));
    assert!(claims.name().is_some());
    assert!(claims.auth_time().is_some());
    assert!(at_hash_matches(&app, &rp, id_token, tokens.access_token()));
    let raw: Value = serde_json::from_slice(&base64_url(id_token.to_string().split('.').nth(1).unwrap())).unwrap();
    assert!(raw["sid"].as_str().is_some_and(|s| !s.is_empty()), "{raw}");

    // UserInfo: the same person, the same claims.
    let info: CoreUserInfoClaims =
        rp.user_info(tokens.access_token().clone(), None).unwrap().request(&http()).expect("userinfo");
    assert_eq!(info.subject().as_str(), user);
    assert_eq!(info.email().map(|e| e.as_str()), Some(person.email.as_str()));

    // Refresh: a new ID token with the same sub (and auth_time), whose
    // at_hash is the new access token's.
    let refresh = tokens.refresh_token().expect("offline_access").clone();
    app.clock.advance(chrono::Duration::seconds(5));
    let renewed = rp.exchange_refresh_token(&refresh).unwrap().request(&http()).expect("refresh");
    let again = renewed.id_token().expect("refresh brings an ID token");
    let later = claims_of(&app, &rp, again, &login.nonce, vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256])
        .expect("the refreshed ID token verifies");
    assert_eq!(later.subject(), claims.subject());
    assert_eq!(later.auth_time(), claims.auth_time());
    assert!(later.issue_time() > claims.issue_time());
    assert!(at_hash_matches(&app, &rp, again, renewed.access_token()));
}

fn base64_url(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).unwrap()
}

fn id_tokens_in_es256_and_eddsa_when_registered(backend: Backend) {
    let app = TestApp::start(backend);
    let person = app.admin();
    for (alg, jws) in [
        (SigningAlg::Es256, CoreJwsSigningAlgorithm::EcdsaP256Sha256),
        (SigningAlg::EdDsa, CoreJwsSigningAlgorithm::EdDsa),
    ] {
        let client = oidc_client(&app, Some(alg));
        let rp = relying_party(&app, &client);
        let login = login_url(&rp, &["openid"], &[]);
        let tokens = exchange(&rp, person.approve(&app, &login.url), login.verifier);
        let id_token = tokens.id_token().unwrap();
        assert_eq!(id_token.signing_alg().unwrap(), &jws);
        claims_of(&app, &rp, id_token, &login.nonce, vec![jws.clone()])
            .expect("verifies with the registered algorithm");
        assert!(at_hash_matches(&app, &rp, id_token, tokens.access_token()));
        // Only the registered algorithm: an RP expecting RS256 refuses it.
        assert!(
            claims_of(&app, &rp, id_token, &login.nonce, vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]).is_err()
        );
    }
}

fn a_relying_party_rejects_what_it_must(backend: Backend) {
    let app = TestApp::start(backend);
    let person = app.admin();
    let client = oidc_client(&app, None);
    let rp = relying_party(&app, &client);
    let rs256 = || vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256];
    let first = login_url(&rp, &["openid"], &[]);
    let first_tokens = exchange(&rp, person.approve(&app, &first.url), first.verifier);
    let first_id = first_tokens.id_token().unwrap();
    let second = login_url(&rp, &["openid"], &[]);
    let second_tokens = exchange(&rp, person.approve(&app, &second.url), second.verifier);

    // A replayed ID token carries the nonce of another request.
    assert!(claims_of(&app, &rp, first_id, &second.nonce, rs256()).is_err());
    assert!(claims_of(&app, &rp, first_id, &first.nonce, rs256()).is_ok());
    // An ID token for another client (a different aud).
    let other = oidc_client(&app, None);
    let other_rp = relying_party(&app, &other);
    assert!(claims_of(&app, &other_rp, first_id, &first.nonce, rs256()).is_err());
    // at_hash binds the ID token to its own access token.
    assert!(!at_hash_matches(&app, &rp, first_id, second_tokens.access_token()));
    // Expired: an hour later the relying party refuses it.
    app.clock.advance(chrono::Duration::hours(1));
    assert!(claims_of(&app, &rp, first_id, &first.nonce, rs256()).is_err());

    // No nonce in the request: none in the token, which a relying party
    // that sent one refuses.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s&code_challenge={}&code_challenge_method=S256",
        app.url("/oauth/authorize"),
        client.id,
        urlencode(REDIRECT_URI),
        challenge.as_str()
    );
    let tokens = exchange(&rp, person.approve(&app, &url), verifier);
    let id_token = tokens.id_token().unwrap();
    assert!(claims_of(&app, &rp, id_token, &Nonce::new("expected".into()), rs256()).is_err());
    let raw: Value = serde_json::from_slice(&base64_url(id_token.to_string().split('.').nth(1).unwrap())).unwrap();
    assert!(raw.get("nonce").is_none(), "{raw}");
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Without `openid`, a plain OAuth grant: no ID token, and UserInfo
/// answers `insufficient_scope`.
fn userinfo_refuses_what_is_not_an_openid_token(backend: Backend) {
    let app = TestApp::start(backend);
    let person = app.admin();
    let client = oidc_client(&app, None);
    let rp = relying_party(&app, &client);
    let login = login_url(&rp, &["read"], &[]);
    let url = login.url.replace("scope=openid+read", "scope=read").replace("scope=read+openid", "scope=read");
    let tokens = exchange(&rp, person.approve(&app, &url), login.verifier);
    assert!(tokens.id_token().is_none(), "no openid, no ID token");
    let userinfo = app.url("/oauth/userinfo");
    let res = app.client.get(&userinfo).bearer_auth(tokens.access_token().secret()).send().unwrap();
    assert_eq!(res.status(), 403);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(challenge.starts_with("Bearer error=\"insufficient_scope\""), "{challenge}");

    // No token, a bad token, a client's own token.
    let res = app.client.get(&userinfo).send().unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let res = app.client.post(&userinfo).bearer_auth("not.a.token").send().unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\""));
    let machine =
        app.create_client(NewClient { name: "Machine".into(), scope: "openid read".into(), ..NewClient::default() });
    let cc = app.cc_token(&machine, &[("scope", "openid read")]);
    let res = app.client.get(&userinfo).bearer_auth(cc["access_token"].as_str().unwrap()).send().unwrap();
    assert_eq!(res.status(), 401, "a client's own token acts for no person");

    // POST with the token in the form works too; a disabled person's
    // token stops. A member of her own signs in (the client has no owner,
    // so disabling her touches only what she holds).
    let bea = app.person("bea@example.com");
    let login = login_url(&rp, &["openid", "email"], &[]);
    let tokens = exchange(&rp, bea.approve(&app, &login.url), login.verifier);
    let access = tokens.access_token().secret().clone();
    let post_userinfo = || app.client.post(&userinfo).form(&[("access_token", access.as_str())]).send().unwrap();
    let basic = (client.id.as_str(), client.secret());
    let res = post_userinfo();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().unwrap();
    assert_eq!(body["email"], bea.email.as_str());
    assert!(body.get("name").is_none(), "name needs the profile scope: {body}");
    assert_eq!(app.introspect(&access, basic)["active"], true, "live while she is enabled");

    tessera::accounts::disable_user_id(
        &mut app.conn(),
        &app.clock,
        &app.user_id(&bea.email),
        tessera::audit::Actor::Cli,
    )
    .unwrap();
    // The same token, the same requests: refused now.
    let res = post_userinfo();
    assert_eq!(res.status(), 401, "a disabled person's token answers no UserInfo");
    let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let res = app.client.get(&userinfo).bearer_auth(&access).send().unwrap();
    assert_eq!(res.status(), 401, "nor in the Authorization header");
    let introspection = app.introspect(&access, basic);
    assert_eq!(introspection["active"], false, "{introspection}");
    assert_eq!(
        introspection.as_object().map(|o| o.len()),
        Some(1),
        "an inactive token says nothing else: {introspection}"
    );
    // The admin, who is not disabled, keeps her UserInfo.
    let login = login_url(&rp, &["openid", "email"], &[]);
    let tokens = exchange(&rp, person.approve(&app, &login.url), login.verifier);
    let res = app.client.get(&userinfo).bearer_auth(tokens.access_token().secret()).send().unwrap();
    assert_eq!(res.status(), 200);
}

/// `prompt=login` and `max_age=0` ask for a sign-in over a live session;
/// `login_hint` pre-fills the email.
fn prompt_login_max_age_and_login_hint(backend: Backend) {
    let app = TestApp::start(backend);
    let person = app.admin();
    let client = oidc_client(&app, None);
    let rp = relying_party(&app, &client);
    let first = login_url(&rp, &["openid"], &[]);
    let tokens = exchange(&rp, person.approve(&app, &first.url), first.verifier);
    let first_auth = claims_of(
        &app,
        &rp,
        tokens.id_token().unwrap(),
        &first.nonce,
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
    )
    .unwrap()
    .auth_time()
    .unwrap();
    // Consented and signed in: a plain request goes straight back.
    let plain = login_url(&rp, &["openid"], &[]);
    assert!(location(&person.get(&plain.url)).starts_with(REDIRECT_URI));

    app.clock.advance(chrono::Duration::seconds(30));
    for extra in [("prompt", "login"), ("max_age", "0"), ("max_age", "10")] {
        let login = login_url(&rp, &["openid"], &[extra, ("login_hint", "someone@example.com")]);
        let res = person.get(&login.url);
        let to = location(&res);
        assert!(to.starts_with("/login?"), "{extra:?} must ask for a sign-in, went to {to}");
        // The sign-in page shows the form (not a bounce back) with the hint.
        let page = person.get(&app.url(&to));
        assert_eq!(page.status(), 200);
        let html = page.text().unwrap();
        assert!(html.contains("value=\"someone@example.com\""), "login_hint pre-fills the email");
        let signed_in = person.submit_login(&app, &app.url(&to), &person.password.clone());
        let back = location(&signed_in);
        assert!(back.starts_with("/oauth/authorize?"), "{back}");
        let done = location(&person.get(&app.url(&back)));
        let code = param(&done, "code").unwrap_or_else(|| panic!("{extra:?}: no code after signing in: {done}"));
        let tokens = exchange(&rp, code, login.verifier);
        let auth_time = claims_of(
            &app,
            &rp,
            tokens.id_token().unwrap(),
            &login.nonce,
            vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
        )
        .unwrap()
        .auth_time()
        .unwrap();
        assert!(auth_time > first_auth, "{extra:?}: auth_time is the new sign-in");
        app.clock.advance(chrono::Duration::seconds(30));
    }
    // Someone at the browser adds the mark a fresh sign-in leaves, forged
    // or taken from another request: the sign-in is still asked for.
    app.clock.advance(chrono::Duration::seconds(30));
    let now = tessera::clock::Clock::now(&app.clock).timestamp();
    for forged in ["1".to_string(), format!("{now}"), format!("{now}.AAAAAAAAAAAAAAAAAAAAAA")] {
        let login = login_url(&rp, &["openid"], &[("prompt", "login"), ("auth_after", forged.as_str())]);
        let to = location(&person.get(&login.url));
        assert!(to.starts_with("/login?"), "auth_after={forged} must not skip the sign-in, went to {to}");
    }
    // max_age long enough: no sign-in.
    let login = login_url(&rp, &["openid"], &[("max_age", "3600")]);
    assert!(location(&person.get(&login.url)).starts_with(REDIRECT_URI));
    // prompt=none with a stale sign-in: login_required, never a page.
    let login = login_url(&rp, &["openid"], &[("prompt", "none"), ("max_age", "1")]);
    let back = location(&person.get(&login.url));
    assert_eq!(param(&back, "error").as_deref(), Some("login_required"), "{back}");
    // prompt=none login: refused as a contradiction.
    let login = login_url(&rp, &["openid"], &[("prompt", "none login")]);
    let back = location(&person.get(&login.url));
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"), "{back}");
}

fn signed_in_person_with_id_token(app: &TestApp, client: &TestClient) -> (Person, String) {
    let person = app.admin();
    let hint = id_token_for(app, &person, client);
    (person, hint)
}

/// An ID token of `person` (who signs in if she must) for `client`, by
/// the relying party.
pub fn id_token_for(app: &TestApp, person: &Person, client: &TestClient) -> String {
    let rp = relying_party(app, client);
    let login = login_url(&rp, &["openid"], &[]);
    let tokens = exchange(&rp, person.approve(app, &login.url), login.verifier);
    tokens.id_token().unwrap().to_string()
}

fn still_signed_in(app: &TestApp, person: &Person) -> bool {
    person.get(&app.url("/dashboard")).status() == 200
}

pub fn logout_url(app: &TestApp, pairs: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    app.url(&format!("/oauth/logout?{query}"))
}

/// RP-initiated logout: with a hint for this session it signs out and
/// goes back at once; without one it asks; a URI not registered for the
/// client is an error page, never a redirect.
fn rp_initiated_logout(backend: Backend) {
    let app = TestApp::start(backend);
    let client = oidc_client(&app, None);
    let (person, hint) = signed_in_person_with_id_token(&app, &client);
    assert!(still_signed_in(&app, &person));

    // A foreign post-logout URI: an error page, no redirect, still signed in.
    for uri in ["https://evil.example.com/", "https://app.example.com/signed-out/x", REDIRECT_URI] {
        let res = person.get(&logout_url(&app, &[("id_token_hint", &hint), ("post_logout_redirect_uri", uri)]));
        assert_eq!(res.status(), 400, "{uri}");
        assert!(res.headers().get("location").is_none());
        assert!(still_signed_in(&app, &person));
    }
    // A URI without anyone to vouch for it.
    let res = person.get(&logout_url(&app, &[("post_logout_redirect_uri", LOGOUT_URI)]));
    assert_eq!(res.status(), 400);
    // client_id and the hint disagree.
    let other = oidc_client(&app, None);
    let res = person.get(&logout_url(&app, &[("id_token_hint", &hint), ("client_id", &other.id)]));
    assert_eq!(res.status(), 400);
    // A forged hint.
    let mut forged = hint.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let res = person.get(&logout_url(&app, &[("id_token_hint", &forged)]));
    assert_eq!(res.status(), 400);
    assert!(still_signed_in(&app, &person));

    // No hint: a confirmation page; a forged confirmation is refused.
    let url = logout_url(&app, &[("client_id", &client.id), ("post_logout_redirect_uri", LOGOUT_URI), ("state", "st")]);
    let res = person.get(&url);
    assert_eq!(res.status(), 200);
    let mut fields = hidden_fields(&res.text().unwrap());
    let mut forged_fields = fields.clone();
    forged_fields.retain(|(k, _)| k != "csrf_token");
    forged_fields.push(("csrf_token".into(), "x".into()));
    forged_fields.push(("decision".into(), "logout".into()));
    assert_eq!(person.post(&app.url("/oauth/logout"), &forged_fields).status(), 400);
    assert!(still_signed_in(&app, &person));
    fields.push(("decision".into(), "logout".into()));
    let res = person.post(&app.url("/oauth/logout"), &fields);
    assert_eq!(location(&res), format!("{LOGOUT_URI}?state=st"));
    assert!(!still_signed_in(&app, &person));

    // With a hint for this very session: signed out at once.
    let (person, hint) = signed_in_person_with_id_token(&app, &client);
    let res = person.get(&logout_url(
        &app,
        &[("id_token_hint", &hint), ("post_logout_redirect_uri", LOGOUT_URI), ("state", "xyz")],
    ));
    assert_eq!(location(&res), format!("{LOGOUT_URI}?state=xyz"));
    assert!(!still_signed_in(&app, &person));

    // A hint from an earlier session names another sid: asked first.
    person.sign_in(&app);
    let res = person.get(&logout_url(&app, &[("id_token_hint", &hint)]));
    assert_eq!(res.status(), 200);
    assert!(res.text().unwrap().contains("Sign out of Tessera?"));
    assert!(still_signed_in(&app, &person));
    // Without a session there is nothing to end: with a verified hint,
    // straight to the URI…
    let stranger = Person::new("nobody@example.com", "x");
    let res = stranger.get(&logout_url(&app, &[("id_token_hint", &hint), ("post_logout_redirect_uri", LOGOUT_URI)]));
    assert_eq!(location(&res), LOGOUT_URI);
    // …but without one, nothing vouches for the redirect: a page, so that
    // no one can bounce visitors off this origin to a URI they registered.
    let res = stranger.get(&logout_url(&app, &[("client_id", &client.id), ("post_logout_redirect_uri", LOGOUT_URI)]));
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("location").is_none());
}

/// A cross-site form POST to a logout endpoint arrives without the session
/// cookie (SameSite=Lax): it must not clear the cookie, which would sign
/// the person out without their confirmation while the session lives on.
fn logout_without_a_session_leaves_the_cookie_alone(backend: Backend) {
    let app = TestApp::start(backend);
    let client = oidc_client(&app, None);
    let (_, hint) = signed_in_person_with_id_token(&app, &client);
    let http = crate::support::http_client();
    for (path, form) in [
        ("/oauth/logout", vec![("id_token_hint", hint.as_str())]),
        ("/oauth/logout", vec![("client_id", client.id.as_str())]),
        ("/logout", vec![("csrf_token", "x")]),
    ] {
        let res = http.post(app.url(path)).form(&form).send().unwrap();
        let cleared =
            res.headers().get_all("set-cookie").iter().any(|c| c.to_str().unwrap().contains("tessera_session"));
        assert!(!cleared, "{path} {form:?} cleared the session cookie");
    }
}

/// A client that signs no one in has no business with post-logout URIs:
/// otherwise a client-credentials client could park an open redirect here.
fn post_logout_uris_need_the_code_flow(backend: Backend) {
    let app = TestApp::start(backend);
    let err = tessera::oauth::clients::create(
        &mut app.conn(),
        &app.clock,
        &app.master_key,
        NewClient {
            name: "Machine".into(),
            post_logout_redirect_uris: vec!["https://evil.example.com/".into()],
            ..NewClient::default()
        },
        tessera::audit::Actor::Cli,
    )
    .unwrap_err();
    assert!(err.to_string().contains("post-logout"), "{err}");
}

/// A refresh that narrows the scope narrows the ID token too: without
/// `openid` no ID token, without `email` no email.
fn a_narrowed_refresh_narrows_the_id_token(backend: Backend) {
    let app = TestApp::start(backend);
    let person = app.admin();
    let client = oidc_client(&app, None);
    let rp = relying_party(&app, &client);
    let login = login_url(&rp, &["openid", "email", "offline_access", "read"], &[]);
    let tokens = exchange(&rp, person.approve(&app, &login.url), login.verifier);
    let refresh = tokens.refresh_token().unwrap().clone();
    let narrowed =
        rp.exchange_refresh_token(&refresh).unwrap().add_scope(Scope::new("read".into())).request(&http()).unwrap();
    assert!(narrowed.id_token().is_none(), "no openid in the narrowed scope, no ID token");
    let refresh = narrowed.refresh_token().unwrap().clone();
    let narrowed =
        rp.exchange_refresh_token(&refresh).unwrap().add_scope(Scope::new("openid".into())).request(&http()).unwrap();
    let raw: Value =
        serde_json::from_slice(&base64_url(narrowed.id_token().unwrap().to_string().split('.').nth(1).unwrap()))
            .unwrap();
    assert!(raw.get("email").is_none(), "{raw}");
}

/// Without PKCE (a confidential client that made it optional), an OpenID
/// request must carry a nonce: it is all that ties the ID token to the
/// browser that asked.
fn openid_without_pkce_needs_a_nonce(backend: Backend) {
    let app = TestApp::start(backend);
    let person = app.admin();
    let client = app.create_client(NewClient {
        name: "Backend app".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        grant_types: vec![GrantType::AuthorizationCode],
        scope: "openid read".into(),
        require_pkce: Some(false),
        ..NewClient::default()
    });
    let base = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&state=s",
        app.url("/oauth/authorize"),
        client.id,
        urlencode(REDIRECT_URI)
    );
    person.sign_in(&app);
    let back = location(&person.get(&format!("{base}&scope=openid")));
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_request"), "{back}");
    assert!(param(&back, "error_description").unwrap().contains("nonce"));
    // Without openid, or with a nonce, the request goes on.
    for query in ["&scope=read", "&scope=openid&nonce=n-1"] {
        let res = person.get(&format!("{base}{query}"));
        assert_eq!(res.status(), 200, "{query}: the consent page");
    }
}

/// Discovery lists every OpenID Connect endpoint and capability.
fn discovery_lists_openid_connect(backend: Backend) {
    let app = TestApp::start(backend);
    let doc: Value = app.get("/.well-known/openid-configuration").json().unwrap();
    assert_eq!(doc["userinfo_endpoint"], app.url("/oauth/userinfo"));
    assert_eq!(doc["end_session_endpoint"], app.url("/oauth/logout"));
    assert_eq!(doc["subject_types_supported"], serde_json::json!(["public"]));
    assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["RS256", "ES256", "EdDSA"]));
    for scope in ["openid", "profile", "email", "offline_access"] {
        assert!(doc["scopes_supported"].as_array().unwrap().iter().any(|s| s == scope), "{scope}");
    }
    for claim in ["sub", "auth_time", "nonce", "at_hash", "sid", "email", "email_verified", "name"] {
        assert!(doc["claims_supported"].as_array().unwrap().iter().any(|s| s == claim), "{claim}");
    }
    assert_eq!(doc["prompt_values_supported"], serde_json::json!(["none", "login", "consent"]));
    assert_eq!(doc["request_uri_parameter_supported"], false);
}

both_backends!(
    a_relying_party_signs_a_person_in,
    id_tokens_in_es256_and_eddsa_when_registered,
    a_relying_party_rejects_what_it_must,
    userinfo_refuses_what_is_not_an_openid_token,
    prompt_login_max_age_and_login_hint,
    rp_initiated_logout,
    logout_without_a_session_leaves_the_cookie_alone,
    post_logout_uris_need_the_code_flow,
    a_narrowed_refresh_narrows_the_id_token,
    openid_without_pkce_needs_a_nonce,
    discovery_lists_openid_connect,
    chromium_signs_in_with_openid_and_signs_out,
    the_dashboard_edits_sign_out_redirect_uris,
);

/// The done-when of issue #12: a relying party built with the
/// `openidconnect` crate, and nothing Tessera-specific, signs a person in
/// against a fresh `tessera serve` — discovery, dynamic registration
/// (`TESSERA_REGISTRATION=open`), the code flow with PKCE and a nonce, the
/// ID token against the JWKS, UserInfo. The person is the first admin,
/// with the password the first start printed.
#[test]
fn a_relying_party_signs_in_against_a_fresh_serve() {
    use openidconnect::core::{CoreClientAuthMethod, CoreClientRegistrationRequest, CoreGrantType};
    use openidconnect::registration::EmptyAdditionalClientMetadata;

    use crate::support::served::{Served, tessera};

    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tessera(dir.path());
    cmd.env("TESSERA_REGISTRATION", "open");
    let mut served = Served::start(cmd);
    let base = served.wait_listening();
    let person = Person::new("admin@localhost", &served.admin_password());

    let metadata = CoreProviderMetadata::discover(&IssuerUrl::new(base.clone()).unwrap(), &http()).expect("discovery");
    let endpoint = metadata.registration_endpoint().expect("open registration is advertised").clone();
    let registered = CoreClientRegistrationRequest::new(
        vec![RedirectUrl::new(REDIRECT_URI.into()).unwrap()],
        EmptyAdditionalClientMetadata {},
    )
    .set_grant_types(Some(vec![CoreGrantType::AuthorizationCode, CoreGrantType::RefreshToken]))
    .set_token_endpoint_auth_method(Some(CoreClientAuthMethod::ClientSecretBasic))
    .register(&endpoint, &http())
    .expect("dynamic registration");
    let rp = CoreClient::from_provider_metadata(
        metadata,
        registered.client_id().clone(),
        registered.client_secret().cloned(),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap());

    let login = login_url(&rp, &["openid", "email"], &[]);
    let mut res = person.get(login.url.as_str());
    let to_login = location(&res);
    assert!(to_login.starts_with("/login"), "{to_login}");
    let signed_in = {
        let page = person.get(&format!("{base}{to_login}"));
        let mut fields = hidden_fields(&page.text().unwrap());
        fields.push(("email".into(), person.email.clone()));
        fields.push(("password".into(), person.password.clone()));
        person.post(&format!("{base}/login"), &fields)
    };
    res = person.get(&format!("{base}{}", location(&signed_in)));
    assert_eq!(res.status(), 200, "the consent page");
    let html = res.text().unwrap();
    let mut fields = hidden_fields(&html);
    fields.push(("decision".into(), "approve".into()));
    let back = location(&person.post(&format!("{base}/oauth/consent"), &fields));
    assert_eq!(param(&back, "state").as_deref(), Some(login.state.secret().as_str()));
    let tokens = exchange(&rp, param(&back, "code").expect("a code"), login.verifier);
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token.claims(&rp.id_token_verifier(), &login.nonce).expect("the ID token verifies");
    assert_eq!(claims.email().map(|e| e.as_str()), Some("admin@localhost"));
    let info: CoreUserInfoClaims =
        rp.user_info(tokens.access_token().clone(), None).unwrap().request(&http()).expect("userinfo");
    assert_eq!(info.subject(), claims.subject());
    let (status, _) = served.terminate();
    assert!(status.success());
}

/// An app's owner sets where logout may send people back on the
/// dashboard, with the same rules as the API: loopback or https, and only
/// for an app that signs people in.
fn the_dashboard_edits_sign_out_redirect_uris(backend: Backend) {
    let app = TestApp::start(backend);
    let person = app.admin();
    person.sign_in(&app);
    let owner = app.user_id(&person.email);
    let client = app.create_client(NewClient {
        name: "Photo Printer".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        grant_types: vec![GrantType::AuthorizationCode],
        scope: "openid".into(),
        owner_id: Some(owner.clone()),
        ..NewClient::default()
    });
    let path = format!("/dashboard/apps/{}", client.id);
    let csrf = person.csrf(&app);
    let form = |logout: &'static str| {
        vec![
            ("csrf_token", csrf.clone()),
            ("name", "Photo Printer".to_string()),
            ("redirect_uris", REDIRECT_URI.to_string()),
            ("post_logout_redirect_uris", logout.to_string()),
            ("scope", "openid".to_string()),
            ("pkce", "required".to_string()),
        ]
    };
    let send = |fields: Vec<(&str, String)>| {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        person.submit(&app, &path, &pairs)
    };
    let res = send(form("https://app.example.com/bye\nhttp://127.0.0.1:3000/out"));
    assert_eq!(res.status(), 303);
    let saved = tessera::oauth::clients::find(&mut app.conn(), &client.id).unwrap().unwrap();
    assert_eq!(saved.post_logout_redirect_uris, ["https://app.example.com/bye", "http://127.0.0.1:3000/out"]);
    assert!(person.page(&app, &path).contains("https://app.example.com/bye"));
    let res = send(form("http://evil.example.com/"));
    assert_eq!(res.status(), 422);
    assert!(res.text().unwrap().contains("id=\"post_logout_redirect_uris-error\""));
    let kept = tessera::oauth::clients::find(&mut app.conn(), &client.id).unwrap().unwrap();
    assert_eq!(kept.post_logout_redirect_uris, saved.post_logout_redirect_uris, "nothing changed");
}

/// The person's side in a real Chromium: the sign-in page pre-filled from
/// `login_hint`, the consent page in words for `openid`, `profile` and
/// `email`, then RP-initiated logout's confirmation page and the way back.
/// Screenshots: `oidc-consent`, `oidc-logout`.
fn chromium_signs_in_with_openid_and_signs_out(backend: Backend) {
    use fantoccini::Locator;

    use crate::support::browser::{Chromium, save_screenshot};
    let Some(chromium) = Chromium::start() else { return };
    let app = TestApp::start(backend);
    let callback = app.url("/callback");
    let signed_out = app.url("/signed-out");
    let client = app.create_client(NewClient {
        name: "Photo Printer".into(),
        redirect_uris: vec![callback.clone()],
        grant_types: vec![GrantType::AuthorizationCode],
        scope: "openid profile email".into(),
        auth_method: Some(AuthMethod::ClientSecretBasic),
        post_logout_redirect_uris: vec![signed_out.clone()],
        ..NewClient::default()
    });
    let rp = relying_party(&app, &client).set_redirect_uri(RedirectUrl::new(callback.clone()).unwrap());
    let login = login_url(&rp, &["openid", "profile", "email"], &[("login_hint", "admin@localhost")]);
    let (_, password) = app.first_admin.clone().unwrap();
    let logout =
        logout_url(&app, &[("client_id", &client.id), ("post_logout_redirect_uri", &signed_out), ("state", "bye")]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (landed, left) = runtime.block_on(async {
        let browser = chromium.session().await;
        let result = async {
            browser.goto(&login.url).await?;
            let email = browser.find(Locator::Css("input[name=email]")).await?;
            assert_eq!(email.prop("value").await?.as_deref(), Some("admin@localhost"), "login_hint pre-fills");
            browser.find(Locator::Css("input[name=password]")).await?.send_keys(&password).await?;
            browser.find(Locator::Css("button[type=submit]")).await?.click().await?;
            let approve = browser.wait().for_element(Locator::Id("approve")).await?;
            let text = browser.find(Locator::Css("main")).await?.text().await?;
            for words in ["Sign you in", "See your name", "See your email address"] {
                assert!(text.contains(words), "{words}: {text}");
            }
            save_screenshot(&browser, "oidc-consent").await.expect("screenshot");
            approve.click().await?;
            let landed = wait_for_prefix(&browser, &callback).await?;
            browser.goto(&logout).await?;
            let button = browser.wait().for_element(Locator::Id("logout")).await?;
            save_screenshot(&browser, "oidc-logout").await.expect("screenshot");
            button.click().await?;
            let left = wait_for_prefix(&browser, &signed_out).await?;
            Ok::<_, fantoccini::error::CmdError>((landed, left))
        }
        .await;
        let _ = browser.close().await;
        result.expect("the browser flow")
    });
    let tokens = exchange(&rp, param(&landed, "code").expect("a code"), login.verifier);
    assert!(tokens.id_token().is_some());
    assert_eq!(left, format!("{signed_out}?state=bye"));
}

async fn wait_for_prefix(browser: &fantoccini::Client, prefix: &str) -> Result<String, fantoccini::error::CmdError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = browser.current_url().await?.to_string();
        if now.starts_with(prefix) || std::time::Instant::now() > deadline {
            return Ok(now);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
