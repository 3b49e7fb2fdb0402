//! A JSON body read as bytes and parsed only by the handler, after the
//! `Caller` extractor has run. (actix polls a handler's extractors
//! together, so with `web::Json` a malformed body could answer 400 before
//! a bad credential answered 401; this keeps the order: who, then what.)

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use crate::http::error::ApiError;

pub struct JsonBody {
    bytes: Bytes,
    is_json: bool,
}

impl JsonBody {
    /// The body as `T`: `unsupported_content_type` or `invalid_json` otherwise.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if !self.is_json {
            return Err(ApiError::bad_request("unsupported_content_type", "Expected Content-Type: application/json"));
        }
        serde_json::from_slice(&self.bytes).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("The body is not valid JSON for this endpoint: {e}"))
        })
    }

    /// Like `parse`, but an empty body is `None`.
    pub fn parse_optional<T: DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        if self.bytes.is_empty() { Ok(None) } else { self.parse().map(Some) }
    }
}

impl FromRequest for JsonBody {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let mime = super::media_type(req);
        let is_json = mime == "application/json" || mime.ends_with("+json");
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move { Ok(Self { bytes: bytes.await?, is_json }) })
    }
}
