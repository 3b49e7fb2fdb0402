//! The OpenAPI 3.1 document of `/v1`, generated from the handlers'
//! annotations (utoipa) and served at `/openapi.json`.

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{v1_audit, v1_clients, v1_keys, v1_sdk, v1_users};

/// A `/v1` answer whose `data` (an object, or a list for the list routes)
/// is described in prose.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Envelope {
    success: bool,
    #[schema(value_type = Value)]
    data: serde_json::Value,
}

/// A page of a `/v1` list: at most `limit` items of `data`, and whether
/// more follow (ask again with `starting_after` = the last item's id).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ListEnvelope {
    success: bool,
    #[schema(value_type = Vec<Object>)]
    data: Vec<serde_json::Value>,
    /// Whether items follow the last of `data`.
    has_more: bool,
}

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key, a Tessera access token, or a client-signed JWT"))
                    .build(),
            ),
        );
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-KEY"))));
        components
            .add_security_scheme("sdk_token", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-SDK-TOKEN"))));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Tessera /v1", description = "API keys, users, clients and audit events"),
    paths(
        v1_keys::create,
        v1_keys::list,
        v1_keys::get,
        v1_keys::revoke,
        v1_keys::rotate,
        v1_keys::verify,
        v1_keys::rotate_own,
        v1_keys::rotate_client_key,
        v1_users::me,
        v1_users::list,
        v1_users::get,
        v1_users::create,
        v1_users::update,
        v1_users::disable,
        v1_clients::register,
        v1_clients::list,
        v1_clients::get,
        v1_clients::update,
        v1_clients::rotate_secret,
        v1_clients::disable,
        v1_audit::list,
        v1_sdk::create_token,
        v1_sdk::list_tokens,
        v1_sdk::revoke_token,
        v1_sdk::open_session,
        v1_sdk::read_session,
    ),
    components(schemas(Envelope, ListEnvelope, crate::http::error::ErrorBody)),
    modifiers(&Security)
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
