//! Request extractors whose rejections use the crate's error shape, so a malformed body or query
//! gets the same `{"error": {...}}` answer (400/413/415/422) as every other mistake.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// JSON body. Syntax errors are 400, a wrong shape (missing field, wrong type, unknown field) is
/// 422 with serde's message, which names the field path.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> Error {
    let text = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => Error::Invalid(crate::domain::Invalid::new(
            "body",
            text.trim_start_matches("Failed to deserialize the JSON body into the target type: ")
                .to_owned(),
        )),
        JsonRejection::JsonSyntaxError(_) => Error::BadRequest(format!(
            "body is not valid JSON: {}",
            text.trim_start_matches("Failed to parse the request body as JSON: ")
        )),
        JsonRejection::MissingJsonContentType(_) => Error::UnsupportedMediaType(
            "expected request with `Content-Type: application/json`".into(),
        ),
        other => status_error(other.status(), other.body_text()),
    }
}

fn status_error(status: StatusCode, text: String) -> Error {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge(text),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::UnsupportedMediaType(text),
        _ => Error::BadRequest(text),
    }
}

/// Raw body (CSV import).
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(|r: BytesRejection| status_error(r.status(), r.body_text()))
    }
}

/// Query string; a missing or malformed parameter is a 400 naming it.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|r: QueryRejection| {
                Error::BadRequest(r.body_text().replace(
                    "Failed to deserialize query string: ",
                    "invalid query string: ",
                ))
            })
    }
}

/// Path parameters; e.g. a non-numeric id is a 400.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|r: PathRejection| {
                Error::BadRequest(format!("invalid path parameter: {}", r.body_text()))
            })
    }
}
