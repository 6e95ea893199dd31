//! WHEP (`/whep/{stream}`) and WHIP (`/whip/{stream}`) over axum, `GET /status` and the
//! viewer page. Every bad request gets a status naming the problem and the server carries
//! on serving everyone else:
//! 401 missing/unknown token · 403 a token for another stream · 404 unknown stream or session ·
//! 409 stream already published · 412 `If-Match` naming an old entity tag · 413 body over the
//! limit · 415 wrong content type · 400 malformed SDP (the parser's message) · 422 a PATCH the
//! session cannot carry out · 428 a new ICE generation without `If-Match: *` · 503 +
//! Retry-After at capacity. `PATCH` with `If-Match: *` restarts ICE (RFC 9725 section 4.3.3):
//! `200` with our new credentials as an sdpfrag and a new `ETag`.
//! `POST /streams/{stream}/flip` (authorized as publishing is) switches a stream's camera
//! to the one facing the other way: `200` with the camera now in use as JSON, `422` when
//! the stream cannot flip.

use std::net::IpAddr;
use std::sync::Arc;

use crate::auth::{Denied, Role, StreamToken};
use crate::endpoint::{Direction, Endpoint, EndpointError, SessionInfo};
use crate::sdp::SessionDescription;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

/// The viewer page (plain HTML and JS, embedded: no CDN, no build step).
const VIEWER_PAGE: &str = include_str!("viewer.html");
/// The call page: joins a room with the browser's camera.
const CALL_PAGE: &str = include_str!("call.html");
/// The pattern's strip read from a <video> (frame number, latency, freezes): the viewer
/// page's live figures; the browser tests load it too.
const STRIP_SCRIPT: &str = include_str!("strip.js");

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// A bearer token valid for every stream. With it or any per-stream token,
    /// publishing (WHIP) needs a token.
    pub token: Option<String>,
    /// Tokens valid for one stream each; such a token used on another stream is `403`.
    pub stream_tokens: Vec<StreamToken>,
    /// Tokens that grant viewing one stream (WHEP, and joining call rooms) and nothing
    /// else: such a token on WHIP, or on a WHIP session's `PATCH`/`DELETE`, is `403`.
    pub view_tokens: Vec<StreamToken>,
    /// The operator's token for `GET /status` (the all-streams `token` works too). When
    /// any token is configured, `/status` needs one of these two; without tokens it is
    /// open (a trusted network).
    pub status_token: Option<String>,
    /// Whether viewing (WHEP) needs a token too (and joining a call room).
    pub token_for_viewing: bool,
    /// Origins (`https://host:port`) allowed for browsers: checked on the WebSocket upgrade
    /// and answered in CORS. Empty: any origin.
    pub allowed_origins: Vec<String>,
    /// Largest accepted body.
    pub max_body: usize,
    /// Most participants in one call room.
    pub max_room_participants: usize,
    /// The other bounds on call rooms.
    pub room_limits: crate::rooms::RoomLimits,
    /// Sessions one client address may have open that have not connected yet; one more
    /// is `429` + `Retry-After` (needs the client's address: [`crate::serve`] gives it).
    pub max_pending_per_address: usize,
    /// How long a session counts as pending against its address (the media side's connect
    /// deadline).
    pub pending_deadline: std::time::Duration,
    /// ICE servers advertised in `Link` headers (RFC 9725 section 4.6) on `OPTIONS` and
    /// on `201 Created` of `/whep/{stream}` and `/whip/{stream}`. STUN servers go to
    /// everyone; TURN servers with their credentials only to requests that pass the
    /// stream's token check (on a server without tokens: to everyone, as anyone may
    /// publish and view there).
    pub ice_servers: Vec<crate::link::LinkIceServer>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token: None,
            stream_tokens: Vec::new(),
            view_tokens: Vec::new(),
            status_token: None,
            token_for_viewing: false,
            allowed_origins: Vec::new(),
            max_body: 64 * 1024,
            max_room_participants: 8,
            room_limits: crate::rooms::RoomLimits::default(),
            max_pending_per_address: 8,
            pending_deadline: std::time::Duration::from_secs(15),
            ice_servers: Vec::new(),
        }
    }
}

struct AppState<E> {
    endpoint: Arc<E>,
    config: ServerConfig,
    pending: std::sync::Mutex<crate::limits::PendingPerAddress>,
}

type Shared<E> = State<Arc<AppState<E>>>;
type SessionPath = Path<(String, String)>;

/// The signaling routes over `endpoint`.
pub fn router<E: Endpoint>(endpoint: Arc<E>, config: ServerConfig) -> Router {
    let max_body = config.max_body;
    let rooms = Arc::new(crate::rooms::Rooms::with_config(&config));
    let permissions = crate::permissions::routes(Arc::clone(&endpoint), config.clone());
    let pending = crate::limits::PendingPerAddress::new(
        config.max_pending_per_address,
        config.pending_deadline,
    );
    let state = Arc::new(AppState {
        endpoint,
        config,
        pending: std::sync::Mutex::new(pending),
    });
    let ws = Router::new()
        .route("/ws", get(crate::rooms::upgrade))
        .with_state(rooms);
    Router::new()
        .route("/call", get(|| async { Html(CALL_PAGE) }))
        .route("/", get(|| async { Html(VIEWER_PAGE) }))
        .route("/strip.js", get(strip_script))
        .route("/status", get(status::<E>))
        .route(
            "/whep/{stream}",
            post(whep::<E>).options(|s: Shared<E>, p: Path<String>, h: HeaderMap| {
                endpoint_options(s, Role::View, p, h)
            }),
        )
        .route(
            "/whip/{stream}",
            post(whip::<E>).options(|s: Shared<E>, p: Path<String>, h: HeaderMap| {
                endpoint_options(s, Role::Publish, p, h)
            }),
        )
        .route("/streams/{stream}/flip", post(flip::<E>).options(preflight))
        .route(
            "/whep/{stream}/{session}",
            axum::routing::patch(|s: Shared<E>, p: SessionPath, h: HeaderMap, b: Bytes| {
                patch_session(s, Direction::View, p, h, b)
            })
            .delete(|s: Shared<E>, p: SessionPath, h: HeaderMap| {
                end_session(s, Direction::View, p, h)
            })
            .options(preflight),
        )
        .route(
            "/whip/{stream}/{session}",
            axum::routing::patch(|s: Shared<E>, p: SessionPath, h: HeaderMap, b: Bytes| {
                patch_session(s, Direction::Ingest, p, h, b)
            })
            .delete(|s: Shared<E>, p: SessionPath, h: HeaderMap| {
                end_session(s, Direction::Ingest, p, h)
            })
            .options(preflight),
        )
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(state.config.allowed_origins.clone()),
            cors,
        ))
        .with_state(state)
        .merge(ws)
        .merge(permissions)
}

async fn strip_script() -> Response {
    let mut r = STRIP_SCRIPT.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    r
}

/// Lets pages on other origins use the endpoints: any origin, or with
/// `--allowed-origin` only those listed (the request's `Origin` echoed back).
async fn cors(
    State(allowed): State<Arc<Vec<String>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if allowed.is_empty() {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else {
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        match origin {
            Some(o) if origin_allowed(&allowed, Some(&o)) => {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
            }
            _ => return response,
        }
    }
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

/// `OPTIONS` on a WHIP/WHEP endpoint: the CORS preflight, with the ICE servers this
/// request may use as `Link` headers.
async fn endpoint_options<E: Endpoint>(
    State(state): Shared<E>,
    role: Role,
    Path(stream): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = bad_name(&stream) {
        return r;
    }
    let mut r = preflight().await;
    ice_server_links(&state.config, &headers, &stream, role, &mut r);
    r
}

/// Adds the configured ICE servers as `Link` headers: STUN to everyone, TURN (with its
/// credentials) only when the request passes the token check for `role` on `stream` (a
/// viewing token is enough on a WHEP endpoint).
fn ice_server_links(
    config: &ServerConfig,
    headers: &HeaderMap,
    stream: &str,
    role: Role,
    r: &mut Response,
) {
    let trusted = crate::auth::check_role(config, headers, None, stream, role).is_ok();
    for server in &config.ice_servers {
        if server.is_turn() && !trusted {
            continue;
        }
        if let Some(v) = server
            .header_value(trusted)
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            r.headers_mut().append(header::LINK, v);
        }
    }
}

/// Whether a request from `origin` may proceed: any when the list is empty; else a
/// request without `Origin` (not a browser) or from a listed origin.
pub(crate) fn origin_allowed(allowed: &[String], origin: Option<&HeaderValue>) -> bool {
    match origin {
        _ if allowed.is_empty() => true,
        None => true,
        Some(o) => o.to_str().is_ok_and(|o| {
            allowed
                .iter()
                .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(o))
        }),
    }
}

/// `400` naming the rule when `stream` is not a valid stream name.
fn bad_name(stream: &str) -> Option<Response> {
    crate::auth::check_stream_name(stream)
        .err()
        .map(|m| problem(StatusCode::BAD_REQUEST, m))
}

pub(crate) fn problem(status: StatusCode, message: impl Into<String>) -> Response {
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
        EndpointError::Unprocessable(_) => problem(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        EndpointError::PreconditionRequired(_) => {
            problem(StatusCode::PRECONDITION_REQUIRED, e.to_string())
        }
        EndpointError::Internal(_) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Checks the bearer token for `stream` when requests of `direction` need one (publishing
/// always, viewing with `token_for_viewing`; only if any token is configured); `Some` is
/// the 401 or 403 to send.
fn unauthorized(
    config: &ServerConfig,
    headers: &HeaderMap,
    stream: &str,
    direction: Direction,
) -> Option<Response> {
    if direction == Direction::View && !config.token_for_viewing {
        return None;
    }
    let role = match direction {
        Direction::View => Role::View,
        Direction::Ingest => Role::Publish,
    };
    denied(
        crate::auth::check_role(config, headers, None, stream, role),
        stream,
    )
}

/// The 401 or 403 for a failed token check (`None` when it passed).
pub(crate) fn denied(result: Result<(), Denied>, stream: &str) -> Option<Response> {
    let (status, message) = match result {
        Ok(()) => return None,
        Err(Denied::Missing) => (
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer token".to_owned(),
        ),
        Err(Denied::Unknown) => (StatusCode::UNAUTHORIZED, "wrong bearer token".to_owned()),
        Err(Denied::OtherStream) => {
            return Some(problem(
                StatusCode::FORBIDDEN,
                format!("this bearer token is not valid for stream {stream:?}"),
            ))
        }
        Err(Denied::ViewOnly) => {
            return Some(problem(
                StatusCode::FORBIDDEN,
                format!("this bearer token may only view stream {stream:?}"),
            ))
        }
    };
    let mut r = problem(status, message);
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(r)
}

pub(crate) fn content_type_is(headers: &HeaderMap, wanted: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(wanted))
}

/// The client's address, when the server gives it ([`crate::serve`] does).
type Client = Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>;

async fn whep<E: Endpoint>(
    state: Shared<E>,
    Path(stream): Path<String>,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = client.map(|c| c.0 .0.ip());
    create(
        state,
        Direction::View,
        "whep",
        stream,
        client,
        headers,
        body,
    )
    .await
}

async fn whip<E: Endpoint>(
    state: Shared<E>,
    Path(stream): Path<String>,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = client.map(|c| c.0 .0.ip());
    create(
        state,
        Direction::Ingest,
        "whip",
        stream,
        client,
        headers,
        body,
    )
    .await
}

/// `Some(429)` when `client` already holds its cap of sessions that have not connected
/// (those that have connected or ended since are let go first).
async fn too_many_pending<E: Endpoint>(state: &AppState<E>, client: IpAddr) -> Option<Response> {
    let ids = crate::sync_lock(&state.pending).ids();
    for id in ids {
        if state.endpoint.session(&id).await.is_none() || state.endpoint.connected(&id).await {
            crate::sync_lock(&state.pending).settled(&id);
        }
    }
    let admitted = crate::sync_lock(&state.pending).admit(client, std::time::Instant::now());
    let crate::limits::TooManyPending(n) = admitted.err()?;
    tracing::warn!("{client}: refused a session, {n} of its sessions have not connected yet");
    let mut r = problem(
        StatusCode::TOO_MANY_REQUESTS,
        format!("{n} sessions from your address have not connected yet; connect or end them first"),
    );
    let retry = state.config.pending_deadline.as_secs().max(1);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry));
    Some(r)
}

async fn create<E: Endpoint>(
    State(state): Shared<E>,
    direction: Direction,
    prefix: &str,
    stream: String,
    client: Option<IpAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = bad_name(&stream) {
        return r;
    }
    if let Some(r) = unauthorized(&state.config, &headers, &stream, direction) {
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
    if let Some(client) = client {
        if let Some(r) = too_many_pending(&state, client).await {
            return r;
        }
    }
    match state.endpoint.offer(direction, &stream, offer).await {
        Ok(answer) => {
            if let Some(client) = client {
                crate::sync_lock(&state.pending).opened(
                    client,
                    &answer.session,
                    std::time::Instant::now(),
                );
            }
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
            if let Some(v) = quoted_etag(&answer.session) {
                h.insert(header::ETAG, v);
            }
            let role = match direction {
                Direction::View => Role::View,
                Direction::Ingest => Role::Publish,
            };
            ice_server_links(&state.config, &headers, &stream, role, &mut r);
            r
        }
        Err(e) => endpoint_error(e),
    }
}

/// The session at `/{whip|whep}/{stream}/{session}`; `Err` is the 404 to send when no
/// such session lives at this path.
async fn session_at<E: Endpoint>(
    state: &AppState<E>,
    direction: Direction,
    stream: &str,
    session: &str,
) -> Result<SessionInfo, Response> {
    match state.endpoint.session(session).await {
        Some(info) if info.stream == stream && info.direction == direction => Ok(info),
        _ => Err(endpoint_error(EndpointError::UnknownSession(
            session.to_owned(),
        ))),
    }
}

/// `tag` as an `ETag` header value (quoted, as entity tags are).
fn quoted_etag(tag: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("\"{tag}\"")).ok()
}

/// Whether an `If-Match` value (`*`, or a list of entity tags) names `etag`.
fn names_etag(if_match: &str, etag: &str) -> bool {
    if_match.split(',').any(|t| {
        let t = t.trim();
        let t = t.strip_prefix("W/").unwrap_or(t);
        t.strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .is_some_and(|t| t == etag)
    })
}

pub(crate) fn has_attribute(fragment: &str, name: &str) -> bool {
    fragment
        .lines()
        .any(|l| l.trim_end_matches('\r').starts_with(name))
}

/// `PATCH`: trickle ICE (`204`), or with `If-Match: *` an ICE restart (`200` + fragment).
async fn patch_session<E: Endpoint>(
    State(state): Shared<E>,
    direction: Direction,
    Path((stream, session)): SessionPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = bad_name(&stream) {
        return r;
    }
    if let Some(r) = unauthorized(&state.config, &headers, &stream, direction) {
        return r;
    }
    if !content_type_is(&headers, "application/trickle-ice-sdpfrag") {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "trickle ICE and ICE restarts need Content-Type: application/trickle-ice-sdpfrag",
        );
    }
    let info = match session_at(&state, direction, &stream, &session).await {
        Ok(info) => info,
        Err(r) => return r,
    };
    let Ok(fragment) = std::str::from_utf8(&body) else {
        return problem(StatusCode::BAD_REQUEST, "the fragment is not UTF-8 text");
    };
    let if_match = match headers.get(header::IF_MATCH).map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v.trim()),
        Some(Err(_)) => return problem(StatusCode::BAD_REQUEST, "If-Match is not ASCII"),
    };
    match if_match {
        Some("*") => {
            if !has_attribute(fragment, "a=ice-ufrag:") || !has_attribute(fragment, "a=ice-pwd:") {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "an ICE restart (If-Match: *) needs the new a=ice-ufrag and a=ice-pwd",
                );
            }
            match state.endpoint.restart_ice(&session, fragment).await {
                Ok(restart) => {
                    tracing::info!("session {session}: ICE restarted");
                    let mut r = (StatusCode::OK, restart.fragment).into_response();
                    let h = r.headers_mut();
                    h.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/trickle-ice-sdpfrag"),
                    );
                    if let Some(v) = quoted_etag(&restart.etag) {
                        h.insert(header::ETAG, v);
                    }
                    r
                }
                Err(e) => endpoint_error(e),
            }
        }
        Some(tags) if !names_etag(tags, &info.etag) => problem(
            StatusCode::PRECONDITION_FAILED,
            format!(
                "If-Match {tags} does not name the session's current entity tag \"{}\" \
                 (ICE was restarted since)",
                info.etag
            ),
        ),
        // Without If-Match: accepted, as clients of earlier WHEP drafts send none.
        _ => match state.endpoint.trickle(&session, fragment).await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => endpoint_error(e),
        },
    }
}

async fn end_session<E: Endpoint>(
    State(state): Shared<E>,
    direction: Direction,
    Path((stream, session)): SessionPath,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = bad_name(&stream) {
        return r;
    }
    if let Some(r) = unauthorized(&state.config, &headers, &stream, direction) {
        return r;
    }
    if let Err(r) = session_at(&state, direction, &stream, &session).await {
        return r;
    }
    match state.endpoint.end(&session).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => endpoint_error(e),
    }
}

/// `GET /status`: the operator's (it lists session ids, which are capabilities).
async fn status<E: Endpoint>(State(state): Shared<E>, headers: HeaderMap) -> Response {
    if let Some(r) = denied(
        crate::auth::check_operator(&state.config, &headers),
        "/status",
    ) {
        return r;
    }
    Json(state.endpoint.status().await).into_response()
}

/// `POST /streams/{stream}/flip`: the stream's camera switched to the one facing the other
/// way; authorized as publishing is (the stream's tokens or the all-streams token).
async fn flip<E: Endpoint>(
    State(state): Shared<E>,
    Path(stream): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = bad_name(&stream) {
        return r;
    }
    if let Some(r) = unauthorized(&state.config, &headers, &stream, Direction::Ingest) {
        return r;
    }
    match state.endpoint.flip(&stream).await {
        Ok(camera) => {
            tracing::info!("stream {stream:?} flipped its camera");
            Json(camera).into_response()
        }
        Err(e) => endpoint_error(e),
    }
}
