//! Data channels on a peer connection: opening one, taking those the other side opens,
//! and the text and binary messages on them (webrtc-rs's channel behind a small surface).

use std::sync::Arc;
use std::time::Duration;

use webrtc::data_channel::{DataChannel as RtcDataChannel, DataChannelEvent};

use super::{Peer, PeerError};

/// What happens on a data channel, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataEvent {
    /// The channel is open: messages can be sent.
    Open,
    /// A text message (UTF-8; a text message that is not UTF-8 arrives as `Binary`).
    Text(String),
    /// A binary message, its length in bytes (the bytes are not kept).
    Binary(usize),
    /// The channel closed (or failed); nothing follows.
    Closed,
}

/// One data channel of a [`Peer`], ours or the other side's.
#[derive(Clone)]
pub struct DataChannel {
    inner: Arc<dyn RtcDataChannel>,
}

impl DataChannel {
    /// The channel's label (`RTCDataChannel.label`; empty if the connection is gone).
    pub async fn label(&self) -> String {
        self.inner.label().await.unwrap_or_default()
    }

    /// Sends a text message.
    pub async fn send_text(&self, text: &str) -> Result<(), PeerError> {
        self.inner
            .send_text(text)
            .await
            .map_err(PeerError::setup("cannot send on the data channel"))
    }

    /// The channel's next event; [`DataEvent::Closed`] once it is closed.
    pub async fn next_event(&self) -> DataEvent {
        loop {
            let Some(event) = self.inner.poll().await else {
                return DataEvent::Closed;
            };
            return match event {
                DataChannelEvent::OnOpen => DataEvent::Open,
                DataChannelEvent::OnMessage(m) => {
                    if m.is_string {
                        match String::from_utf8(m.data.to_vec()) {
                            Ok(text) => DataEvent::Text(text),
                            Err(e) => DataEvent::Binary(e.into_bytes().len()),
                        }
                    } else {
                        DataEvent::Binary(m.data.len())
                    }
                }
                DataChannelEvent::OnClose | DataChannelEvent::OnError => DataEvent::Closed,
                _ => continue,
            };
        }
    }

    /// Closes the channel.
    pub async fn close(&self) {
        let _ = self.inner.close().await;
    }
}

impl Peer {
    /// Opens a data channel labelled `label` (ordered, reliable). Made before the offer,
    /// it is negotiated by it (an `m=application` section); it opens once connected.
    pub async fn create_data_channel(&self, label: &str) -> Result<DataChannel, PeerError> {
        let inner = self
            .pc
            .create_data_channel(label, None)
            .await
            .map_err(PeerError::setup("cannot create a data channel"))?;
        Ok(DataChannel { inner })
    }

    /// The next data channel the other side opens (`ondatachannel`).
    pub async fn next_data_channel(&self, timeout: Duration) -> Option<DataChannel> {
        let mut rx = self.data_channels.lock().await;
        let inner = tokio::time::timeout(timeout, rx.recv())
            .await
            .ok()
            .flatten()?;
        Some(DataChannel { inner })
    }
}
