//! Connected apps: what a person granted, and taking it back. Revoking an
//! app forgets the consent (the next authorization asks again) and ends
//! every token family of that app for that person.

use oauth2::TokenResponse;
use tessera::oauth::connected_apps::{self, ConnectedAppError};

use crate::both_backends;
use crate::support::browser::{REDIRECT_URI, authorization_url, code, field, oauth2_http, param, refusal};
use crate::support::{Backend, TestApp};

fn pair(error: &str, description: &str) -> (String, String) {
    (error.to_string(), description.to_string())
}

fn revoking_a_connected_app_ends_its_access_and_asks_again(backend: Backend) {
    let app = TestApp::start(backend);
    let person = app.admin();
    let user = app.user_id(&person.email);
    let client = app.web_client("read offline_access");
    let other = app.web_client("read");
    let oauth = app.oauth2_client(&client);
    let (url, _, verifier) = authorization_url(&oauth, &["read", "offline_access"]);
    let code_value = person.approve(&app, &url);
    let token = oauth.exchange_code(code(code_value)).set_pkce_verifier(verifier).request(&oauth2_http()).unwrap();
    let refresh = token.refresh_token().expect("offline_access gives a refresh token").clone();
    let access = token.access_token().secret().clone();
    let (other_url, _, _) = authorization_url(&app.oauth2_client(&other), &["read"]);
    person.approve(&app, &other_url);

    let apps = connected_apps::list(&mut app.conn(), &user).unwrap();
    assert_eq!(apps.len(), 2, "{apps:?}");
    let listed = apps.iter().find(|a| a.client_id == client.id).unwrap();
    assert_eq!((listed.name.as_str(), listed.audience.as_str()), ("Photo Printer", ""));
    assert_eq!(listed.scopes, ["offline_access", "read"]);
    assert!(listed.last_used.is_some());
    // Remembered: a second authorization skips the page.
    let (again, _, _) = authorization_url(&oauth, &["read"]);
    let back = person.open_authorize(&app, &again).expect_err("consent is remembered: no page");
    assert!(back.starts_with(REDIRECT_URI) && param(&back, "code").is_some(), "straight back with a code: {back}");

    // A code issued just before the revocation…
    let (pending_url, _, pending_verifier) = authorization_url(&oauth, &["read"]);
    let pending = person.approve(&app, &pending_url);

    let families =
        connected_apps::revoke(&mut app.conn(), &app.clock, &user, &client.id, tessera::audit::Actor::person(&user))
            .unwrap();
    assert_eq!(families, 1);
    // … starts no new family after it.
    let late = oauth.exchange_code(code(pending)).set_pkce_verifier(pending_verifier).request(&oauth2_http());
    assert_eq!(
        refusal(late),
        pair("invalid_grant", "the authorization code is unknown"),
        "a code from before the revocation is gone"
    );
    // The refresh token fails, the access token reads inactive.
    assert_eq!(
        refusal(oauth.exchange_refresh_token(&refresh).request(&oauth2_http())),
        pair("invalid_grant", "the refresh token has been revoked")
    );
    assert_eq!(app.introspect(&access, (&client.id, client.secret()))["active"], false);
    // The next authorization asks again; the other app is untouched.
    let (third, _, _) = authorization_url(&oauth, &["read"]);
    let fields = person.open_authorize(&app, &third).unwrap_or_else(|back| panic!("no consent page: sent to {back}"));
    assert_eq!((field(&fields, "client_id"), field(&fields, "scope")), (client.id.as_str(), "read"));
    let apps = connected_apps::list(&mut app.conn(), &user).unwrap();
    assert_eq!(apps.iter().map(|a| a.client_id.as_str()).collect::<Vec<_>>(), [other.id.as_str()]);
    // Nothing left to take back.
    assert!(matches!(
        connected_apps::revoke(&mut app.conn(), &app.clock, &user, &client.id, tessera::audit::Actor::person(&user)),
        Err(ConnectedAppError::NotConnected)
    ));
}

both_backends!(revoking_a_connected_app_ends_its_access_and_asks_again);
