//! Request extractors: JSON bodies whose rejections become our JSON errors, the authenticated
//! caller, and idempotency keys.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use tributary_core::AccountId;
use tributary_core::registry::AccountKind;
use tributary_ledger::store::{IDEMPOTENCY_KEY_BYTES_MAX, IdempotencyKey};

use crate::AppState;
use crate::error::ApiError;

/// A JSON body. Unlike axum's `Json`, every rejection is an [`ApiError`].
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request("malformed_json", detail),
        JsonRejection::JsonDataError(_) => ApiError::bad_request("invalid_body", detail),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(status, "body_too_large", "the request body is larger than this node accepts")
        }
        _ => ApiError::bad_request("invalid_body", detail),
    }
}

/// The account that signed the request with its API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub account: AccountId,
    pub kind: AccountKind,
}

impl Caller {
    pub fn is_operator(&self) -> bool {
        self.kind == AccountKind::Operator
    }

    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.is_operator() {
            Ok(())
        } else {
            Err(ApiError::forbidden("only the node operator may do this"))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match OptionalCaller::from_request_parts(parts, state).await?.0 {
            Some(caller) => Ok(caller),
            None => Err(ApiError::unauthorized("send your API key as Authorization: Bearer <key>")),
        }
    }
}

/// The caller if the request carries a key; a key that is present but wrong is still an error.
#[derive(Clone, Copy, Debug)]
pub struct OptionalCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for OptionalCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Ok(OptionalCaller(None));
        };
        let key =
            header.to_str().ok().and_then(|value| value.strip_prefix("Bearer ")).map(str::trim).ok_or_else(
                || ApiError::unauthorized("the Authorization header must be: Bearer <api key>"),
            )?;
        match state.authenticate(key).await? {
            Some((account, kind)) => Ok(OptionalCaller(Some(Caller { account, kind }))),
            None => Err(ApiError::unauthorized("the API key is not valid on this node")),
        }
    }
}

/// The `Idempotency-Key` header, if any.
#[derive(Clone, Debug)]
pub struct IdempotencyHeader(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else { return Ok(IdempotencyHeader(None)) };
        let key = value
            .to_str()
            .ok()
            .filter(|key| !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_BYTES_MAX)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_idempotency_key",
                    format!(
                        "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} visible ASCII characters"
                    ),
                )
            })?;
        Ok(IdempotencyHeader(Some(key.to_owned())))
    }
}

impl IdempotencyHeader {
    /// Binds the key to the caller and to this exact request: the route and the parsed body, so a
    /// retry that differs only in whitespace still matches and one with another amount does not.
    pub fn for_request(
        &self,
        caller: AccountId,
        route: &str,
        body: &impl serde::Serialize,
    ) -> Option<IdempotencyKey> {
        let key = self.0.as_ref()?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(route.as_bytes());
        hasher.update(&[0]);
        hasher.update(&serde_json::to_vec(body).expect("request bodies serialize"));
        Some(IdempotencyKey { scope: caller, key: key.clone(), request_hash: *hasher.finalize().as_bytes() })
    }
}

/// The client's address, for per-address rate limits.
pub fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())
}

/// The client's address as an extractor.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}
