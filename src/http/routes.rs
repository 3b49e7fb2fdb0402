//! The one routing table: every path, method and middleware is here.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, UrlencodedError};
use actix_web::middleware::from_fn;
use actix_web::{App, Error, Resource, web};

use super::{
    AppState, browser, dashboard, health, middleware, oauth, oidc, openapi, pages, registration, v1_audit, v1_clients,
    v1_keys, v1_sdk, v1_users, well_known,
};
use crate::http::error::ApiError;

/// A resource whose other methods answer 405 instead of 404.
fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(pages::method_not_allowed))
}

fn json_error(err: JsonPayloadError, limit: usize) -> Error {
    match err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::payload_too_large(limit).into()
        }
        JsonPayloadError::ContentType => {
            ApiError::bad_request("unsupported_content_type", "Expected Content-Type: application/json").into()
        }
        other => {
            ApiError::bad_request("invalid_json", format!("The body is not valid JSON for this endpoint: {other}"))
                .into()
        }
    }
}

fn form_error(err: UrlencodedError, limit: usize) -> Error {
    match err {
        UrlencodedError::Overflow { .. } => ApiError::payload_too_large(limit).into(),
        _ => ApiError::bad_request("invalid_form", "The body is not a valid form for this endpoint").into(),
    }
}

/// The whole application: state, body limits, middleware and routes.
pub fn build_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    let limit = state.config.body_limit;
    App::new()
        .app_data(state)
        .app_data(web::JsonConfig::default().limit(limit).error_handler(move |e, _| json_error(e, limit)))
        .app_data(web::FormConfig::default().limit(limit).error_handler(move |e, _| form_error(e, limit)))
        .app_data(web::PayloadConfig::default().limit(limit))
        .app_data(web::QueryConfig::default().error_handler(|e, _| {
            ApiError::bad_request("invalid_query", format!("The query string is not valid for this endpoint: {e}"))
                .into()
        }))
        .wrap(from_fn(middleware::request_context))
        .service(resource("/").get(pages::index))
        .service(resource("/static/style.css").get(pages::stylesheet))
        .service(resource("/static/copy.js").get(pages::copy_script))
        .service(resource("/healthz").get(health::healthz))
        .service(resource("/openapi.json").get(openapi::document))
        .service(resource("/readyz").get(health::readyz))
        .service(resource("/.well-known/jwks.json").get(well_known::jwks))
        .service(resource("/.well-known/oauth-authorization-server").get(oauth::metadata))
        .service(resource("/.well-known/openid-configuration").get(oauth::metadata))
        .service(resource("/login").get(browser::login_page).post(browser::login))
        .service(resource("/logout").post(browser::logout))
        .service(resource("/oauth/authorize").get(browser::authorize_get).post(browser::authorize_post))
        .service(resource("/oauth/consent").post(browser::consent))
        .service(resource("/oauth/userinfo").get(oidc::userinfo).post(oidc::userinfo))
        .service(resource("/oauth/logout").get(oidc::logout_get).post(oidc::logout_post))
        .service(resource("/dashboard").get(dashboard::overview))
        .service(resource("/dashboard/api-keys").get(dashboard::keys_page).post(dashboard::create_key))
        .service(resource("/dashboard/api-keys/{id}").get(dashboard::key_page))
        .service(resource("/dashboard/api-keys/{id}/rotate").post(dashboard::rotate_key))
        .service(
            resource("/dashboard/api-keys/{id}/revoke").get(dashboard::revoke_key_page).post(dashboard::revoke_key),
        )
        .service(resource("/dashboard/apps").get(dashboard::apps_page).post(dashboard::create_app))
        .service(resource("/dashboard/apps/{id}").get(dashboard::app_page).post(dashboard::update_app))
        .service(resource("/dashboard/apps/{id}/rotate-secret").post(dashboard::rotate_app_secret))
        .service(resource("/dashboard/apps/{id}/disable").get(dashboard::disable_app_page).post(dashboard::disable_app))
        .service(resource("/dashboard/apps/{id}/delete").get(dashboard::delete_app_page).post(dashboard::delete_app))
        .service(resource("/dashboard/connected-apps").get(dashboard::connected_apps_page))
        .service(resource("/dashboard/connected-apps/{client_id}/revoke").post(dashboard::revoke_connected_app))
        .service(resource("/dashboard/admin/users").get(dashboard::users_page).post(dashboard::create_user))
        .service(
            resource("/dashboard/admin/users/{id}/disable")
                .get(dashboard::disable_user_page)
                .post(dashboard::disable_user),
        )
        .service(resource("/dashboard/admin/users/{id}/reset-password").post(dashboard::reset_password))
        .service(resource("/dashboard/admin/clients").get(dashboard::clients_page))
        .service(resource("/dashboard/admin/resources").get(dashboard::resources_page).post(dashboard::create_resource))
        .service(resource("/dashboard/admin/resources/{id}/rotate-secret").post(dashboard::rotate_resource))
        .service(
            resource("/dashboard/admin/signing-keys")
                .get(dashboard::signing_keys_page)
                .post(dashboard::rotate_signing_key),
        )
        .service(resource("/dashboard/admin/audit").get(dashboard::audit_page))
        .service(
            resource("/dashboard/admin/registration")
                .get(dashboard::registration_page)
                .post(dashboard::create_initial_token),
        )
        .service(resource("/dashboard/admin/registration/{id}/revoke").post(dashboard::revoke_initial_token))
        .service(resource("/oauth/token").post(oauth::token))
        .service(resource("/oauth/introspect").post(oauth::introspect))
        .service(resource("/oauth/revoke").post(oauth::revoke))
        .service(resource("/oauth/register").post(registration::register))
        .service(
            resource("/oauth/register/{client_id}")
                .get(registration::read)
                .put(registration::replace)
                .delete(registration::delete),
        )
        .service(resource("/v1/api-keys").get(v1_keys::list).post(v1_keys::create))
        .service(resource("/v1/api-keys/{id}").get(v1_keys::get).delete(v1_keys::revoke))
        .service(resource("/v1/api-keys/{id}/rotate").post(v1_keys::rotate))
        .service(resource("/v1/keys/verify").post(v1_keys::verify))
        .service(resource("/v1/api/me/api-key/rotate").post(v1_keys::rotate_own))
        .service(resource("/v1/sdk-tokens").get(v1_sdk::list_tokens).post(v1_sdk::create_token))
        .service(resource("/v1/sdk-tokens/{id}").delete(v1_sdk::revoke_token))
        .service(resource("/v1/api/sdk/session").post(v1_sdk::open_session))
        .service(resource("/v1/api/sdk/session/{id}").get(v1_sdk::read_session))
        .service(resource("/v1/api/clients/rotate-key").post(v1_keys::rotate_client_key))
        .service(resource("/v1/audit-events").get(v1_audit::list))
        .service(resource("/v1/clients").get(v1_clients::list).post(v1_clients::register))
        .service(
            resource("/v1/clients/{id}").get(v1_clients::get).patch(v1_clients::update).delete(v1_clients::disable),
        )
        .service(resource("/v1/clients/{id}/rotate-secret").post(v1_clients::rotate_secret))
        .service(resource("/v1/me").get(v1_users::me))
        .service(resource("/v1/users").get(v1_users::list).post(v1_users::create))
        .service(resource("/v1/users/{id}").get(v1_users::get).patch(v1_users::update).delete(v1_users::disable))
        .default_service(web::to(pages::not_found))
}
