//! `/permissions`, `/operator` and `/indicator` over real HTTP with a stand-in media side:
//! the trait's defaults (nothing prompts, no indicator), and the routes being same-origin
//! only (no CORS headers) while WHEP keeps its own.

mod common;

use std::sync::Arc;

use common::http::{get, http};
use usermedia_signaling::{
    router, Answer, Direction, Endpoint, EndpointError, ServerConfig, SessionDescription,
    SessionInfo,
};

/// A media side that overrides none of the permission methods.
struct Quiet;

#[async_trait::async_trait]
impl Endpoint for Quiet {
    type Status = serde_json::Value;

    async fn offer(
        &self,
        _direction: Direction,
        stream: &str,
        _offer: SessionDescription,
    ) -> Result<Answer, EndpointError> {
        Err(EndpointError::UnknownStream(stream.to_owned()))
    }

    async fn trickle(&self, session: &str, _fragment: &str) -> Result<(), EndpointError> {
        Err(EndpointError::UnknownSession(session.to_owned()))
    }

    async fn session(&self, _session: &str) -> Option<SessionInfo> {
        None
    }

    async fn end(&self, session: &str) -> Result<(), EndpointError> {
        Err(EndpointError::UnknownSession(session.to_owned()))
    }

    async fn status(&self) -> serde_json::Value {
        serde_json::json!({})
    }
}

async fn serve(config: ServerConfig) -> std::net::SocketAddr {
    let app = router(Arc::new(Quiet), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn the_defaults_list_nothing_answer_nothing_and_keep_no_indicator() {
    let addr = serve(ServerConfig::default()).await;
    let list = get(addr, "/permissions").await;
    assert_eq!(list.status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&list.body).unwrap(),
        serde_json::json!({"requests": []})
    );
    // Same-origin only: no CORS header, unlike WHEP's routes.
    assert!(!list.headers.contains_key("access-control-allow-origin"));
    let json = [("Content-Type", "application/json")];
    let answer = http(
        addr,
        "POST",
        "/permissions/1",
        &json,
        r#"{"decision":"allow"}"#,
    )
    .await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert!(answer.body.contains("no pending permission request \"1\""));
    let extra = r#"{"decision":"allow","forever":true}"#;
    assert_eq!(
        http(addr, "POST", "/permissions/1", &json, extra)
            .await
            .status,
        400
    );
    let big = format!(r#"{{"decision":"allow","x":"{}"}}"#, "a".repeat(4096));
    assert_eq!(
        http(addr, "POST", "/permissions/1", &json, big)
            .await
            .status,
        413
    );
    assert_eq!(get(addr, "/indicator").await.status, 404);
    let page = get(addr, "/operator").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/permissions/"));
}

#[tokio::test]
async fn with_a_token_listing_and_answering_need_it() {
    let addr = serve(ServerConfig {
        token: Some("t".into()),
        ..ServerConfig::default()
    })
    .await;
    let list = get(addr, "/permissions").await;
    assert_eq!(list.status, 401);
    assert_eq!(
        list.headers.get("www-authenticate").map(String::as_str),
        Some("Bearer")
    );
    let ok = http(
        addr,
        "GET",
        "/permissions",
        &[("Authorization", "Bearer t")],
        "",
    )
    .await;
    assert_eq!(ok.status, 200);
    let json = [("Content-Type", "application/json")];
    let answer = http(
        addr,
        "POST",
        "/permissions/1",
        &json,
        r#"{"decision":"deny"}"#,
    )
    .await;
    assert_eq!(answer.status, 401);
    // The page and the indicator stay public.
    assert_eq!(get(addr, "/operator").await.status, 200);
}
