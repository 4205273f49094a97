//! Bearer-token authentication for `/api/v2` (except `/api/v2/version`).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::error::Error;

pub async fn require_bearer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if authorized(request.headers(), state.token.as_bytes()) {
        next.run(request).await
    } else {
        Error::Unauthorized.into_response()
    }
}

/// `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750) with the configured token.
pub fn authorized(headers: &HeaderMap, token: &[u8]) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return false;
    };
    let value = value.as_bytes();
    if value.len() < 7 || !value[..7].eq_ignore_ascii_case(b"bearer ") {
        return false;
    }
    constant_time_eq(value[7..].trim_ascii(), token)
}

/// Compares without an early exit, so the time taken does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_tokens() {
        let token = b"0123456789abcdef";
        assert!(authorized(&headers("Bearer 0123456789abcdef"), token));
        assert!(authorized(&headers("bearer 0123456789abcdef"), token));
        assert!(!authorized(&headers("Bearer 0123456789abcdeX"), token));
        assert!(!authorized(&headers("Bearer 0123456789abcde"), token));
        assert!(!authorized(&headers("Basic 0123456789abcdef"), token));
        assert!(!authorized(&headers("Bearer"), token));
        assert!(!authorized(&HeaderMap::new(), token));
    }
}
