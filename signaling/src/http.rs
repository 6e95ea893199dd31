//! WHEP (`/whep/{stream}`) and WHIP (`/whip/{stream}`) over axum, `GET /status` and the
//! viewer page. Every bad request gets a status naming the problem and the server carries
//! on serving everyone else:
//! 401 missing/wrong token · 404 unknown stream or session · 409 stream already published ·
//! 413 body over the limit · 415 wrong content type · 400 malformed SDP (the parser's message) ·
//! 503 + Retry-After at capacity · 501 ICE restart.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use subtle::ConstantTimeEq;

use crate::endpoint::{Direction, Endpoint, EndpointError};
use crate::sdp::SessionDescription;

/// The viewer page (plain HTML and JS, embedded: no CDN, no build step).
const VIEWER_PAGE: &str = include_str!("viewer.html");
/// The call page: joins a room with the browser's camera.
const CALL_PAGE: &str = include_str!("call.html");

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The bearer token publishing (WHIP) requires, if any.
    pub token: Option<String>,
    /// Whether viewing (WHEP) requires the token too.
    pub token_for_viewing: bool,
    /// Largest accepted body.
    pub max_body: usize,
    /// Most participants in one call room.
    pub max_room_participants: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token: None,
            token_for_viewing: false,
            max_body: 64 * 1024,
            max_room_participants: 8,
        }
    }
}

struct AppState {
    endpoint: Arc<dyn Endpoint>,
    config: ServerConfig,
}

type Shared = State<Arc<AppState>>;

/// The signaling routes over `endpoint`.
pub fn router(endpoint: Arc<dyn Endpoint>, config: ServerConfig) -> Router {
    let max_body = config.max_body;
    let rooms = Arc::new(crate::rooms::Rooms::new(config.max_room_participants));
    let state = Arc::new(AppState { endpoint, config });
    let ws = Router::new()
        .route("/ws", get(crate::rooms::upgrade))
        .with_state(rooms);
    Router::new()
        .route("/call", get(|| async { Html(CALL_PAGE) }))
        .route("/", get(|| async { Html(VIEWER_PAGE) }))
        .route("/status", get(status))
        .route("/whep/{stream}", post(whep).options(preflight))
        .route("/whip/{stream}", post(whip).options(preflight))
        .route(
            "/whep/{stream}/{session}",
            axum::routing::patch(patch_session)
                .delete(end_session)
                .options(preflight),
        )
        .route(
            "/whip/{stream}/{session}",
            axum::routing::patch(patch_session)
                .delete(end_session)
                .options(preflight),
        )
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::map_response(cors))
        .with_state(state)
        .merge(ws)
}

/// Lets pages on other origins use the endpoints.
async fn cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link, Retry-After"),
    );
    response
}

async fn preflight() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert("Accept-Post", HeaderValue::from_static("application/sdp"));
    r
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    let mut r = (status, format!("{}\n", message.into())).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn endpoint_error(e: EndpointError) -> Response {
    match e {
        EndpointError::UnknownStream(_) | EndpointError::UnknownSession(_) => {
            problem(StatusCode::NOT_FOUND, e.to_string())
        }
        EndpointError::BadOffer(_) => problem(StatusCode::BAD_REQUEST, e.to_string()),
        EndpointError::Conflict(_) => problem(StatusCode::CONFLICT, e.to_string()),
        EndpointError::TooManySessions { retry_after_secs } => {
            let mut r = problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            r
        }
        EndpointError::NotImplemented(_) => problem(StatusCode::NOT_IMPLEMENTED, e.to_string()),
        EndpointError::Internal(_) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Checks `Authorization: Bearer <token>` in constant time; `Some` is the 401 to send.
fn unauthorized(config: &ServerConfig, headers: &HeaderMap, required: bool) -> Option<Response> {
    let (Some(token), true) = (&config.token, required) else {
        return None;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if bool::from(g.as_bytes().ct_eq(token.as_bytes())) => None,
        Some(_) => {
            let mut r = problem(StatusCode::UNAUTHORIZED, "wrong bearer token");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Some(r)
        }
        None => {
            let mut r = problem(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer token",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Some(r)
        }
    }
}

fn content_type_is(headers: &HeaderMap, wanted: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(wanted))
}

async fn whep(
    state: Shared,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let required = state.config.token_for_viewing;
    create(
        state,
        Direction::View,
        "whep",
        stream,
        headers,
        body,
        required,
    )
    .await
}

async fn whip(
    state: Shared,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    create(
        state,
        Direction::Ingest,
        "whip",
        stream,
        headers,
        body,
        true,
    )
    .await
}

async fn create(
    State(state): Shared,
    direction: Direction,
    prefix: &str,
    stream: String,
    headers: HeaderMap,
    body: Bytes,
    auth_required: bool,
) -> Response {
    if let Some(r) = unauthorized(&state.config, &headers, auth_required) {
        return r;
    }
    if !content_type_is(&headers, "application/sdp") {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the offer must be sent as Content-Type: application/sdp",
        );
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return problem(StatusCode::BAD_REQUEST, "the SDP is not UTF-8 text");
    };
    let offer = match SessionDescription::parse(text) {
        Ok(o) => o,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("malformed SDP: {e}")),
    };
    match state.endpoint.offer(direction, &stream, offer).await {
        Ok(answer) => {
            let location = format!("/{prefix}/{stream}/{}", answer.session);
            let mut r = (StatusCode::CREATED, answer.sdp).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/sdp"),
            );
            if let Ok(v) = HeaderValue::from_str(&location) {
                h.insert(header::LOCATION, v);
            }
            if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", answer.session)) {
                h.insert(header::ETAG, v);
            }
            r
        }
        Err(e) => endpoint_error(e),
    }
}

async fn patch_session(
    State(state): Shared,
    Path((_stream, session)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    debug_assert_eq!(method, Method::PATCH);
    if let Some(r) = unauthorized(&state.config, &headers, state.config.token_for_viewing) {
        return r;
    }
    if !content_type_is(&headers, "application/trickle-ice-sdpfrag") {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "trickle ICE needs Content-Type: application/trickle-ice-sdpfrag",
        );
    }
    if headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) == Some("*") {
        return endpoint_error(EndpointError::NotImplemented(
            "ICE restart is not supported; start a new session".into(),
        ));
    }
    let Ok(fragment) = std::str::from_utf8(&body) else {
        return problem(StatusCode::BAD_REQUEST, "the fragment is not UTF-8 text");
    };
    match state.endpoint.trickle(&session, fragment).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => endpoint_error(e),
    }
}

async fn end_session(
    State(state): Shared,
    Path((_stream, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = unauthorized(&state.config, &headers, state.config.token_for_viewing) {
        return r;
    }
    match state.endpoint.end(&session).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => endpoint_error(e),
    }
}

async fn status(State(state): Shared) -> Json<serde_json::Value> {
    Json(state.endpoint.status().await)
}
