//! The operator's side of permission prompts and the privacy indicator over HTTP:
//! `GET /permissions` (pending requests), `POST /permissions/{id}` (`{"decision":
//! "allow"|"deny"}`), both authenticated like publishing, the operator's page
//! (`/operator`) that answers them, and the public `GET /indicator`.
//!
//! These routes are same-origin only (no CORS headers), and answering needs
//! `Content-Type: application/json`, so a page on another origin can neither read the
//! requests nor answer one with a form post.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::auth::{self, Denied};
use crate::endpoint::Endpoint;
use crate::http::problem;
use crate::http::ServerConfig;

/// The operator's page: pending requests with Allow and Deny, the token kept in the page.
const OPERATOR_PAGE: &str = include_str!("operator.html");

/// Largest accepted decision body.
const MAX_DECISION_BODY: usize = 1024;

/// A permission request waiting for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionRequest {
    /// Answer it at `POST /permissions/{id}`.
    pub id: String,
    /// Who asks: `stream:NAME`, `room:NAME`, or none (the top level).
    pub context: Option<String>,
    /// What it asks for: `camera`, `microphone`.
    pub features: Vec<String>,
    /// The labels of the devices it would open.
    pub devices: Vec<String>,
    /// Time left to answer, in milliseconds.
    pub expires_in_ms: u64,
}

impl PermissionRequest {
    /// The stream whose token may answer it (a `stream:NAME` context).
    fn stream(&self) -> Option<&str> {
        self.context.as_deref()?.strip_prefix("stream:")
    }
}

/// The operator's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PermissionDecision {
    Allow,
    Deny,
}

/// The body of `POST /permissions/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: PermissionDecision,
}

/// No pending request by that id (unknown, answered, or timed out): 404.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no pending permission request {0:?} (unknown, answered or timed out)")]
pub struct UnknownRequest(pub String);

struct PermissionState<E> {
    endpoint: Arc<E>,
    config: ServerConfig,
}

type Shared<E> = State<Arc<PermissionState<E>>>;

/// The permission and indicator routes over `endpoint`.
pub(crate) fn routes<E: Endpoint>(endpoint: Arc<E>, config: ServerConfig) -> Router {
    let state = Arc::new(PermissionState { endpoint, config });
    Router::new()
        .route("/permissions", get(list::<E>))
        .route("/permissions/{id}", post(answer::<E>))
        .route("/operator", get(|| async { Html(OPERATOR_PAGE) }))
        .route("/indicator", get(indicator::<E>))
        // The badge script both pages load (one copy, not one per page).
        .route("/indicator.js", get(indicator_script))
        .layer(DefaultBodyLimit::max(MAX_DECISION_BODY))
        .with_state(state)
}

/// The pages' indicator badge: polls `GET /indicator` and renders it.
const INDICATOR_SCRIPT: &str = include_str!("indicator.js");

async fn indicator_script() -> Response {
    let mut r = INDICATOR_SCRIPT.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    r
}

/// A stream name no stream token can have: checking it passes only the token for every
/// stream (a valid stream token reads as "another stream").
const NO_STREAM: &str = "/";

/// The 401 to send unless the request carries a configured token (any, when some are).
fn without_token(config: &ServerConfig, headers: &HeaderMap) -> Option<Response> {
    match auth::check(config, headers, NO_STREAM) {
        Ok(()) | Err(Denied::OtherStream) => None,
        Err(Denied::ViewOnly) => Some(problem(
            StatusCode::FORBIDDEN,
            "a viewing token cannot answer permission prompts",
        )),
        // Missing or unknown: the 401 (with WWW-Authenticate) every route sends.
        missing_or_unknown => crate::http::denied(missing_or_unknown, NO_STREAM),
    }
}

/// Whether the request's token may answer `request`: the token for every stream, or the
/// token of the stream it is for.
fn may_answer(config: &ServerConfig, headers: &HeaderMap, request: &PermissionRequest) -> bool {
    auth::check(config, headers, request.stream().unwrap_or(NO_STREAM)).is_ok()
}

/// `GET /permissions`: the pending requests this token may answer, oldest first.
async fn list<E: Endpoint>(State(state): Shared<E>, headers: HeaderMap) -> Response {
    if let Some(r) = without_token(&state.config, &headers) {
        return r;
    }
    let requests: Vec<PermissionRequest> = state
        .endpoint
        .permission_requests()
        .await
        .into_iter()
        .filter(|r| may_answer(&state.config, &headers, r))
        .collect();
    Json(serde_json::json!({ "requests": requests })).into_response()
}

/// `POST /permissions/{id}` with `{"decision": "allow"|"deny"}`: `204`.
async fn answer<E: Endpoint>(
    State(state): Shared<E>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = without_token(&state.config, &headers) {
        return r;
    }
    if !crate::http::content_type_is(&headers, "application/json") {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the decision must be sent as Content-Type: application/json",
        );
    }
    let decision = match serde_json::from_slice::<DecisionBody>(&body) {
        Ok(b) => b.decision,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"decision\": \"allow\" or \"deny\"}}: {e}"),
            )
        }
    };
    let requests = state.endpoint.permission_requests().await;
    let Some(request) = requests.iter().find(|r| r.id == id) else {
        return problem(StatusCode::NOT_FOUND, UnknownRequest(id).to_string());
    };
    if !may_answer(&state.config, &headers, request) {
        return problem(
            StatusCode::FORBIDDEN,
            format!("this bearer token may not answer permission request {id:?}"),
        );
    }
    match state.endpoint.answer_permission(&id, decision).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => problem(StatusCode::NOT_FOUND, e.to_string()),
    }
}

/// `GET /indicator`: which kinds of device are in use, public (it names no session,
/// stream or device); `404` when the media side keeps none.
async fn indicator<E: Endpoint>(State(state): Shared<E>) -> Response {
    match state.endpoint.indicator().await {
        Some(v) => {
            let mut r = Json(v).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        None => problem(StatusCode::NOT_FOUND, "no indicator here"),
    }
}
