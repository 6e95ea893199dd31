//! Building a webrtc-rs peer connection the way usermedia needs it: H.264
//! (constrained baseline, packetization-mode 1), VP8 and Opus only, ICE on explicit local
//! addresses (with the configured STUN/TURN servers and policy) with fast connectivity
//! checks and no mDNS, send-side congestion control
//! (GCC over TWCC, capped by REMB), and keyframe requests surfaced to the sender.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};

use rtc::interceptor::{
    Attribute, BandwidthEstimator, EstimatorStats, Gcc, Interceptor, Packet, PacketReport, Slot,
    StreamInfo, TaggedPacket,
};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_congestion_control, register_default_interceptors, CongestionFeedback, Registry,
};
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceTransportPolicy, SettingEngineBuilder,
};

use super::{PeerConfig, PeerError};
use crate::encode::h264::PROFILE_LEVEL_ID;
use crate::encode::VideoCodec;
use crate::sync::lock;

/// Payload types we offer (browsers map their own in answers; we read the negotiated one).
pub const H264_PAYLOAD_TYPE: u8 = 102;
pub const VP8_PAYLOAD_TYPE: u8 = 96;
pub const OPUS_PAYLOAD_TYPE: u8 = 111;

/// The H.264 codec we send and receive.
pub fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: format!(
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={PROFILE_LEVEL_ID}"
        ),
        rtcp_feedback: vec![],
    }
}

/// The VP8 codec we send and receive (no parameters; RFC 7741).
pub fn vp8_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

/// A video codec's RTP description and the payload type we offer it with.
pub fn video_codec_parameters(codec: VideoCodec) -> RTCRtpCodecParameters {
    match codec {
        VideoCodec::H264 => RTCRtpCodecParameters {
            rtp_codec: h264_codec(),
            payload_type: H264_PAYLOAD_TYPE,
        },
        VideoCodec::Vp8 => RTCRtpCodecParameters {
            rtp_codec: vp8_codec(),
            payload_type: VP8_PAYLOAD_TYPE,
        },
    }
}

/// The Opus codec we send and receive (RTP clock 48 kHz, 2 channels as RFC 7587 says).
pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        // stereo=1: we decode stereo, so a browser may send it (it sends mono otherwise);
        // sprop-stereo=1: our stereo tracks are sent as stereo.
        sdp_fmtp_line: "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// What a peer asked of one stream we send, counted as `getStats()` counts it
/// (`nackCount`, `pliCount`, `firCount`: RTCP messages received for that SSRC).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FeedbackCounts {
    pub nacks: u32,
    pub plis: u32,
    pub firs: u32,
}

/// Inbound feedback per media SSRC we send. webrtc-rs 0.21 has the outbound `nackCount`,
/// `pliCount` and `firCount` stats but never feeds them (its read-side RTCP accounting is
/// not called), so we count in our own interceptor. Only registered SSRCs are counted: the
/// SSRCs in feedback are the remote's to choose, and counting every one it names would let
/// a peer grow this map without bound.
#[derive(Debug, Default, Clone)]
pub struct FeedbackLog(Arc<Mutex<HashMap<u32, FeedbackCounts>>>);

impl FeedbackLog {
    /// Counts feedback about `ssrc` from now on (a stream we send).
    pub fn register(&self, ssrc: u32) {
        lock(&self.0).entry(ssrc).or_default();
    }

    /// The counts for `ssrc` (zero if it was never asked anything).
    pub fn counts(&self, ssrc: u32) -> FeedbackCounts {
        lock(&self.0).get(&ssrc).copied().unwrap_or_default()
    }

    fn record(&self, packets: &[Box<dyn rtc::rtcp::Packet>]) {
        let mut log = lock(&self.0);
        for p in packets {
            let any = p.as_any();
            if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                if let Some(c) = log.get_mut(&nack.media_ssrc) {
                    c.nacks += 1;
                }
            } else if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                if let Some(c) = log.get_mut(&pli.media_ssrc) {
                    c.plis += 1;
                }
            } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                for entry in &fir.fir {
                    if let Some(c) = log.get_mut(&entry.ssrc) {
                        c.firs += 1;
                    }
                }
            }
        }
    }
}

/// Marks inbound PLI/FIR for the application so senders see them through
/// `TrackLocal::poll`; every other inbound RTCP is consumed by the interceptors below it.
/// It keeps the latest REMB's bitrate, the cap on the bandwidth estimate.
/// It also counts the feedback it sees (NACKs pass it on their way up: the NACK responder
/// below only observes them).
struct KeyframeRequests {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    feedback: FeedbackLog,
    /// The latest REMB's bitrate (f64 bits; NaN before any).
    remb: Arc<AtomicU64>,
}

fn is_keyframe_request(p: &dyn rtc::rtcp::Packet) -> bool {
    let any = p.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequests {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for p in packets {
                let remb = p.as_any().downcast_ref::<ReceiverEstimatedMaximumBitrate>();
                if let Some(bps) = remb.and_then(|r| super::estimate::remb_bitrate(r.bitrate)) {
                    self.remb.store(bps.to_bits(), Ordering::Relaxed);
                }
            }
            self.feedback.record(packets);
            let requests: Vec<Box<dyn rtc::rtcp::Packet>> = packets
                .iter()
                .filter(|p| is_keyframe_request(p.as_ref()))
                .cloned()
                .collect();
            if requests.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeRequests {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

/// GCC wrapped so its target bitrate is published where the senders read it (webrtc-rs
/// 0.21 does not fill the outbound `targetBitrate` stat (measured: always 0), and the
/// estimator lives inside the interceptor chain, out of reach otherwise), fed only the
/// packet reports that carry a verdict.
struct ReportingEstimator<E: BandwidthEstimator> {
    inner: E,
    target: Arc<AtomicU64>,
}

impl<E: BandwidthEstimator> ReportingEstimator<E> {
    fn publish(&self) {
        self.target
            .store(self.inner.target_bitrate().to_bits(), Ordering::Relaxed);
    }
}

impl<E: BandwidthEstimator> BandwidthEstimator for ReportingEstimator<E> {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        // Only packets TWCC could name have a verdict (see `estimate`).
        self.inner
            .on_reports(now, &super::estimate::with_verdict(reports));
        self.publish();
    }

    fn target_bitrate(&self) -> f64 {
        self.inner.target_bitrate()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.publish();
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.inner.stats()
    }
}

/// The congestion controller's current target capped by the peer's latest REMB, bits per
/// second (f64 bits in atomics; the REMB NaN until one arrives).
#[derive(Clone, Debug)]
pub struct BandwidthTarget {
    gcc: Arc<AtomicU64>,
    remb: Arc<AtomicU64>,
    min: f64,
}

impl BandwidthTarget {
    pub fn bits_per_second(&self) -> f64 {
        let remb = f64::from_bits(self.remb.load(Ordering::Relaxed));
        super::estimate::combined(
            f64::from_bits(self.gcc.load(Ordering::Relaxed)),
            (!remb.is_nan()).then_some(remb),
            self.min,
        )
    }
}

/// The local addresses ICE gathers on: the configured ones, or every interface that is
/// up, loopback included (a browser on the same machine must work).
pub fn ice_addresses(config: &PeerConfig) -> Vec<IpAddr> {
    if !config.ice_addrs.is_empty() {
        return config.ice_addrs.clone();
    }
    let mut addrs: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|list| list.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    // Link-local IPv6 needs a scope id that ICE candidates do not carry.
    addrs.retain(|ip| match ip {
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
        IpAddr::V4(_) => true,
    });
    if addrs.is_empty() {
        addrs.push(IpAddr::from([127, 0, 0, 1]));
    }
    addrs
}

/// Where the shared UDP port is bound: on the ICE address when there is exactly one,
/// else on every IPv4 interface.
pub fn udp_port_bind_addr(config: &PeerConfig, port: u16) -> std::net::SocketAddr {
    match config.ice_addrs.as_slice() {
        [one] => std::net::SocketAddr::new(*one, port),
        _ => std::net::SocketAddr::from(([0, 0, 0, 0], port)),
    }
}

/// A built peer connection with the handles on what its interceptors observe.
pub struct Built {
    pub pc: Arc<dyn PeerConnection>,
    pub bandwidth: BandwidthTarget,
    pub feedback: FeedbackLog,
}

/// Builds a peer connection and the handles on its bandwidth estimate and inbound
/// feedback. Must run inside a tokio runtime.
pub async fn build(
    config: &PeerConfig,
    handler: Arc<dyn PeerConnectionEventHandler>,
    port: Option<Arc<super::mux::PeerPort>>,
    bridges: &super::turn_bridge::TurnBridges,
    impair: Option<&super::ImpairLink>,
) -> Result<Built, PeerError> {
    let mut media = MediaEngine::default();
    // Both video codecs, H.264 first: the default order of our offers (senders narrow
    // and reorder their own m-line to the codecs they may send).
    for codec in VideoCodec::ALL {
        media
            .register_codec(video_codec_parameters(codec), RtpCodecKind::Video)
            .map_err(PeerError::setup(format!("cannot register {codec}")))?;
    }
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: OPUS_PAYLOAD_TYPE,
            },
            RtpCodecKind::Audio,
        )
        .map_err(PeerError::setup("cannot register Opus"))?;
    // abs-capture-time on both kinds: our capture times go out (Chrome's getStats computes
    // the end-to-end delay from them), a sender's are read (remote tracks' stats).
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        media
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: super::capture_time::ABS_CAPTURE_TIME_URI.to_owned(),
                },
                kind,
                None,
            )
            .map_err(PeerError::setup("cannot register abs-capture-time"))?;
    }
    let b = &config.video_bitrate;
    let gcc = Gcc::new(b.start as f64, b.min as f64, b.max as f64);
    let target = Arc::new(AtomicU64::new(gcc.target_bitrate().to_bits()));
    let estimator = ReportingEstimator {
        inner: gcc,
        target: Arc::clone(&target),
    };
    // Codecs first: the interceptors add their RTCP feedback to registered codecs.
    let registry = configure_congestion_control(
        Registry::new(),
        estimator,
        CongestionFeedback::Twcc,
        &mut media,
    )
    .map_err(PeerError::setup("cannot configure congestion control"))?;
    let registry = register_default_interceptors(registry, &mut media)
        .map_err(PeerError::setup("cannot register the interceptors"))?;
    // webrtc-rs 0.21's pacer starts at a fixed 1 Mbit/s whatever GCC's start estimate and
    // moves only when the estimate changes, so a 2 Mbit/s track was held to 1 Mbit/s with
    // up to 4096 packets queued (measured: seconds of added latency). Start it above the
    // most we send; GCC's changes then move it, and the encoder follows GCC too. (A
    // no-op interceptor in this slot would also drop the inbound RTCP we forward.)
    let pacer = rtc::interceptor::PacerBuilder::new()
        .with_target_bitrate(2.0 * b.max as f64 + 256_000.0)
        .build();
    let registry = registry.with(Slot::Pacer, pacer);
    let feedback = FeedbackLog::default();
    let remb = Arc::new(AtomicU64::new(f64::NAN.to_bits()));
    let registry = registry.with(
        Slot::from(14_000),
        KeyframeRequests {
            read: VecDeque::new(),
            write: VecDeque::new(),
            feedback: feedback.clone(),
            remb: Arc::clone(&remb),
        },
    );

    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_ice_connection_attempts(
            Some(config.ice_check_interval),
            Some(super::config::binding_requests(config.ice_check_interval)),
        )
        .with_ice_timeouts(
            Some(config.ice_disconnected_timeout),
            Some(config.ice_failed_timeout),
            Some(Duration::from_secs(1)),
        )
        .build();
    let mut udp: Vec<String> = ice_addresses(config)
        .into_iter()
        .map(|ip| std::net::SocketAddr::new(ip, 0).to_string())
        .collect();
    let mut builder = PeerConnectionBuilder::new();
    let mut runtime: Option<Arc<dyn webrtc::runtime::Runtime>> = None;
    if let Some(port) = port {
        // One local candidate, on the shared port: our descriptions list it once per ICE
        // address (ice::Finish); whatever arrives for us comes through the mux.
        let bound = port.local_addr().ip();
        let ip = if bound.is_unspecified() {
            let v4 = ice_addresses(config).into_iter().filter(IpAddr::is_ipv4);
            let v4: Vec<IpAddr> = v4.collect();
            v4.iter()
                .find(|ip| !ip.is_loopback())
                .or(v4.first())
                .copied()
                .unwrap_or(IpAddr::from([127, 0, 0, 1]))
        } else {
            bound
        };
        udp = vec![std::net::SocketAddr::new(ip, 0).to_string()];
        runtime = Some(Arc::new(super::mux::MuxRuntime { port }));
    }
    if let Some(link) = impair {
        // Below SRTP, between webrtc-rs and the sockets (the shared port's too).
        let inner = runtime.unwrap_or_else(|| Arc::new(webrtc::runtime::TokioRuntime));
        runtime = Some(link.runtime(inner));
    }
    if let Some(runtime) = runtime {
        builder = builder.with_runtime(runtime);
    }
    let pc = builder
        .with_configuration(
            RTCConfigurationBuilder::new()
                .with_ice_servers(super::ice::rtc_servers(&config.ice_servers, bridges)?)
                .with_ice_transport_policy(if config.ice_relay_only {
                    RTCIceTransportPolicy::Relay
                } else {
                    RTCIceTransportPolicy::All
                })
                .build(),
        )
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(handler)
        .with_udp_addrs(udp)
        .build()
        .await
        .map_err(PeerError::setup("cannot build the peer connection"))?;
    Ok(Built {
        pc: Arc::new(pc),
        bandwidth: BandwidthTarget {
            gcc: target,
            remb,
            min: b.min as f64,
        },
        feedback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::payload_feedbacks::full_intra_request::FirEntry;

    #[test]
    fn feedback_is_counted_for_our_streams_only() {
        let log = FeedbackLog::default();
        log.register(7);
        let nack = |ssrc| -> Box<dyn rtc::rtcp::Packet> {
            Box::new(TransportLayerNack {
                sender_ssrc: 1,
                media_ssrc: ssrc,
                nacks: vec![],
            })
        };
        let pli = |ssrc| -> Box<dyn rtc::rtcp::Packet> {
            Box::new(PictureLossIndication {
                sender_ssrc: 1,
                media_ssrc: ssrc,
            })
        };
        // A FIR names its targets in its entries; a remote may name any SSRC it likes.
        let fir: Box<dyn rtc::rtcp::Packet> = Box::new(FullIntraRequest {
            sender_ssrc: 1,
            media_ssrc: 0,
            fir: (0..150)
                .map(|ssrc| FirEntry {
                    ssrc,
                    sequence_number: 0,
                })
                .collect(),
        });
        log.record(&[nack(7), nack(7), pli(7), fir, nack(99), pli(1234)]);
        assert_eq!(
            log.counts(7),
            FeedbackCounts {
                nacks: 2,
                plis: 1,
                firs: 1
            }
        );
        assert_eq!(log.counts(99), FeedbackCounts::default());
        assert_eq!(lock(&log.0).len(), 1, "SSRCs we do not send are not kept");
    }
}
