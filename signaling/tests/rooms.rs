//! Call rooms over a real WebSocket on loopback: joining, the relay with `from` in place of
//! `to`, leaving, a full room, and the error reply to each kind of bad message.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use usermedia_signaling::{
    router, Answer, ClientMessage, Direction, Endpoint, EndpointError, ServerConfig, ServerMessage,
    SessionDescription, SessionInfo,
};

/// A media side with nothing to offer: the rooms need none.
struct NoMedia;

#[async_trait::async_trait]
impl Endpoint for NoMedia {
    type Status = ();

    async fn offer(
        &self,
        _: Direction,
        stream: &str,
        _: SessionDescription,
    ) -> Result<Answer, EndpointError> {
        Err(EndpointError::UnknownStream(stream.to_owned()))
    }

    async fn trickle(&self, session: &str, _: &str) -> Result<(), EndpointError> {
        Err(EndpointError::UnknownSession(session.to_owned()))
    }

    async fn session(&self, _: &str) -> Option<SessionInfo> {
        None
    }

    async fn end(&self, session: &str) -> Result<(), EndpointError> {
        Err(EndpointError::UnknownSession(session.to_owned()))
    }

    async fn status(&self) {}
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A server whose rooms hold at most `max` participants.
async fn serve(max: usize) -> SocketAddr {
    let config = ServerConfig {
        max_room_participants: max,
        ..ServerConfig::default()
    };
    let app = router(Arc::new(NoMedia), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn connect(addr: SocketAddr, room: &str) -> Socket {
    let url = format!("ws://{addr}/ws?room={room}");
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn send(socket: &mut Socket, text: &str) {
    socket.send(Message::text(text)).await.unwrap();
}

/// The next text message, as it came.
async fn next_text(socket: &mut Socket) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a message within 5 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = message {
            return text.to_string();
        }
    }
}

async fn next(socket: &mut Socket) -> ServerMessage {
    serde_json::from_str(&next_text(socket).await).unwrap()
}

/// Sends `text` and expects the error reply `message`.
async fn refused(socket: &mut Socket, text: &str, message: &str) {
    send(socket, text).await;
    assert_eq!(
        next(socket).await,
        ServerMessage::error(message),
        "the reply to {text}"
    );
}

/// Joins; returns our id and the others'.
async fn join(socket: &mut Socket) -> (String, Vec<String>) {
    send(socket, &ClientMessage::Join.to_json()).await;
    match next(socket).await {
        ServerMessage::Peers { you, peers } => (you, peers),
        other => panic!("expected peers, got {other:?}"),
    }
}

#[tokio::test]
async fn participants_meet_and_their_messages_are_relayed() {
    let addr = serve(2).await;
    let mut a = connect(addr, "r1").await;
    // Before joining, nothing is relayed.
    refused(
        &mut a,
        r#"{"type":"offer","to":"x","sdp":"S"}"#,
        "unexpected message type \"offer\"",
    )
    .await;
    let (a_id, others) = join(&mut a).await;
    assert!(others.is_empty());
    let mut b = connect(addr, "r1").await;
    let (b_id, others) = join(&mut b).await;
    assert_eq!(others, vec![a_id.clone()]);
    assert_eq!(
        next_text(&mut a).await,
        format!(r#"{{"type":"join","from":"{b_id}"}}"#)
    );

    // The joiner offers; the offer arrives with `from` in place of `to`.
    let offer = ClientMessage::Offer {
        to: a_id.clone(),
        sdp: "v=0\r\n".into(),
    };
    send(&mut b, &offer.to_json()).await;
    assert_eq!(
        next_text(&mut a).await,
        format!(r#"{{"type":"offer","from":"{b_id}","sdp":"v=0\r\n"}}"#)
    );
    send(
        &mut a,
        &format!(r#"{{"type":"answer","to":"{b_id}","sdp":"A"}}"#),
    )
    .await;
    assert_eq!(
        next(&mut b).await,
        ServerMessage::Answer {
            from: a_id.clone(),
            sdp: "A".into()
        }
    );
    send(
        &mut a,
        &format!(r#"{{"type":"candidate","to":"{b_id}","candidate":{{"candidate":"c"}}}}"#),
    )
    .await;
    assert_eq!(
        next_text(&mut b).await,
        format!(r#"{{"type":"candidate","from":"{a_id}","candidate":{{"candidate":"c"}}}}"#)
    );

    // A third is one too many.
    let mut c = connect(addr, "r1").await;
    refused(&mut c, r#"{"type":"join"}"#, "the room is full").await;
    // Another room is another matter.
    let mut d = connect(addr, "r2").await;
    assert!(join(&mut d).await.1.is_empty());

    // Leaving is announced to the others.
    send(&mut b, r#"{"type":"leave"}"#).await;
    assert_eq!(next(&mut a).await, ServerMessage::Leave { from: b_id });
}

#[tokio::test]
async fn every_bad_message_gets_its_error_reply() {
    let addr = serve(8).await;
    let mut a = connect(addr, "bad").await;
    refused(&mut a, "{", "not JSON").await;
    refused(&mut a, "[]", "a message needs a \"type\"").await;
    refused(&mut a, r#"{"type":1}"#, "a message needs a \"type\"").await;
    refused(
        &mut a,
        r#"{"type":"dance"}"#,
        "unexpected message type \"dance\"",
    )
    .await;
    join(&mut a).await;
    refused(
        &mut a,
        r#"{"type":"join"}"#,
        "unexpected message type \"join\"",
    )
    .await;
    refused(
        &mut a,
        r#"{"type":"offer","sdp":"S"}"#,
        "a relayed message needs \"to\"",
    )
    .await;
    refused(
        &mut a,
        r#"{"type":"answer","to":"nobody","sdp":"S"}"#,
        "no participant \"nobody\" in this room",
    )
    .await;
    // Still in the room after all that.
    let mut b = connect(addr, "bad").await;
    assert_eq!(join(&mut b).await.1.len(), 1);
}
