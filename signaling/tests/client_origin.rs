//! The client's bearer token stays on its origin, with two servers on loopback: a WHIP
//! endpoint that answers with a `Location` on another origin, and one that redirects the
//! offer there. The foreign server must never see the token; the endpoint's own origin
//! still gets it (the well-behaved case beside the attack).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use usermedia_signaling::HttpClient;

const ANSWER: &str = "v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

/// What a server saw: (method, path, Authorization).
type Seen = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

/// A server that records every request and answers POSTs with 201 and `location`, or a
/// 307 to `redirect` when there is one.
async fn server(location: Arc<Mutex<String>>, redirect: Option<String>) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    let app = Router::new().fallback(any(
        move |method: axum::http::Method, uri: axum::http::Uri, headers: HeaderMap| {
            let record = Arc::clone(&record);
            let location = location.lock().unwrap().clone();
            let redirect = redirect.clone();
            async move {
                let auth = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                record
                    .lock()
                    .unwrap()
                    .push((method.to_string(), uri.path().to_owned(), auth));
                match (method.as_str(), redirect) {
                    ("POST", Some(to)) => {
                        (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]).into_response()
                    }
                    ("POST", None) => (
                        StatusCode::CREATED,
                        [
                            (header::LOCATION, location),
                            (header::CONTENT_TYPE, "application/sdp".to_owned()),
                        ],
                        ANSWER,
                    )
                        .into_response(),
                    _ => StatusCode::OK.into_response(),
                }
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

fn auths(seen: &Seen) -> Vec<Option<String>> {
    seen.lock().unwrap().iter().map(|s| s.2.clone()).collect()
}

#[tokio::test]
async fn the_token_never_reaches_a_foreign_location_or_redirect() {
    let client = HttpClient::new().unwrap();
    // The foreign server: where the endpoints point.
    let (foreign, foreign_seen) = server(Arc::new(Mutex::new("/s/1".into())), None).await;
    // 1. A Location on another origin: the session's DELETE goes there without the token.
    let (home, home_seen) = server(
        Arc::new(Mutex::new(format!("http://{foreign}/whip/cam/s1"))),
        None,
    )
    .await;
    let session = client
        .post_offer(
            &format!("http://{home}/whip/cam"),
            Some("secret"),
            "v=0\r\n",
        )
        .await
        .unwrap();
    assert_eq!(session.location, format!("http://{foreign}/whip/cam/s1"));
    session.end().await.unwrap();
    session.trickle("a=end-of-candidates\r\n").await.unwrap();
    assert_eq!(auths(&home_seen), [Some("Bearer secret".to_owned())]);
    assert_eq!(auths(&foreign_seen), [None, None], "{foreign_seen:?}");
    // 2. A redirect to another origin: followed, without the token.
    foreign_seen.lock().unwrap().clear();
    let (redirecting, redirect_seen) = server(
        Arc::new(Mutex::new(String::new())),
        Some(format!("http://{foreign}/whip/cam")),
    )
    .await;
    let session = client
        .post_offer(
            &format!("http://{redirecting}/whip/cam"),
            Some("secret"),
            "v=0\r\n",
        )
        .await
        .unwrap();
    session.end().await.unwrap();
    assert_eq!(auths(&redirect_seen), [Some("Bearer secret".to_owned())]);
    assert!(
        auths(&foreign_seen).iter().all(Option::is_none),
        "{foreign_seen:?}"
    );
    // 3. Beside them, a Location on the endpoint's own origin keeps the token.
    let (own, own_seen) = server(Arc::new(Mutex::new("/whip/cam/s9".into())), None).await;
    let session = client
        .post_offer(&format!("http://{own}/whip/cam"), Some("secret"), "v=0\r\n")
        .await
        .unwrap();
    session.end().await.unwrap();
    assert_eq!(
        auths(&own_seen),
        [
            Some("Bearer secret".to_owned()),
            Some("Bearer secret".to_owned())
        ]
    );
}
