"""The side-by-side's receivers for the aiortc and GStreamer publishers: N aiortc peers in
one process (separate from the publisher), counting RTP packets/bytes and complete
(reassembled) encoded frames per peer WITHOUT decoding. aiortc always starts a decoder
thread per video receiver, so aiortc.rtcrtpreceiver.decoder_worker is monkeypatched with a
worker that only counts frames. Everything else (SRTP, jitter buffer, NACK, RTCP RR, REMB)
is stock aiortc, so the publisher sees normal receiver feedback.

Copied from the performance anchors' `aiortc/aiortc_recv.py` (the reference measurements
quoted in docs/performance.md) unchanged apart from this comment. Runs in the venv that
scripts/compare.sh makes (aiortc 1.16.0, av 18.1.0).

Protocol: JSON lines on stdin/stdout.
  in : {"op":"offer","id":i,"sdp":...}  -> out {"op":"answer","id":i,"sdp":...}
  out: {"op":"first","id":i,"t":monotonic}  (first complete encoded frame)
  in : {"op":"mark"} -> out {"op":"mark","t":..,"cpu":..,"peers":{id:{pkts,bytes,frames}}}
  in : {"op":"quit"}
"""
import asyncio, json, os, resource, sys, threading, time, logging

import aioice.ice
aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]

import aiortc.rtcrtpreceiver as rr
from aiortc import RTCPeerConnection, RTCSessionDescription, RTCConfiguration

LOCK = threading.Lock()
FRAMES = {}      # id(output_q) -> [frames, first_t]
QMAP = {}        # id(output_q) -> peer id
RECV_STATS = {}  # receiver object -> [pkts, bytes]
RMAP = {}        # receiver object -> peer id
LOOP = None


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def counting_worker(loop, input_q, output_q, decode_error):
    key = id(output_q)
    while True:
        task = input_q.get()
        if task is None:
            break
        t = time.monotonic()
        with LOCK:
            st = FRAMES.setdefault(key, [0, None])
            st[0] += 1
            first = st[1] is None
            if first:
                st[1] = t
        if first:
            loop.call_soon_threadsafe(report_first, key, t)


def report_first(key, t):
    pid = QMAP.get(key)
    if pid is not None:
        out({"op": "first", "id": pid, "t": t})
    else:  # mapping not known yet; retry shortly
        LOOP.call_later(0.01, report_first, key, t)


rr.decoder_worker = counting_worker

# aiortc's DTLS client offers only ECDHE-ECDSA suites; GStreamer's DTLS server has an RSA
# certificate ("no shared cipher"). For the webrtcbin publisher test, also offer ECDHE-RSA.
if os.environ.get("AIORTC_RECV_RSA") == "1":
    import aiortc.rtcdtlstransport as dt
    _orig_ctx = dt.RTCCertificate._create_ssl_context
    def _ctx(self, srtp_profiles):
        ctx = _orig_ctx(self, srtp_profiles)
        ctx.set_cipher_list(b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
                            b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:"
                            b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA")
        return ctx
    dt.RTCCertificate._create_ssl_context = _ctx
_orig_handle = rr.RTCRtpReceiver._handle_rtp_packet


async def counting_handle(self, packet, arrival_time_ms):
    st = RECV_STATS.get(self)
    if st is None:
        st = RECV_STATS[self] = [0, 0]
    st[0] += 1
    st[1] += len(packet.payload)
    return await _orig_handle(self, packet, arrival_time_ms)


rr.RTCRtpReceiver._handle_rtp_packet = counting_handle


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def main():
    global LOOP
    LOOP = asyncio.get_running_loop()
    pcs = {}
    reader = asyncio.StreamReader()
    await LOOP.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def handle_offer(msg):
        pid = msg["id"]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs[pid] = pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="offer"))
        for t in pc.getTransceivers():
            t.direction = "recvonly"
        await pc.setLocalDescription(await pc.createAnswer())
        for t in pc.getTransceivers():
            QMAP[id(t.receiver.track._queue)] = pid
            RMAP[t.receiver] = pid
        out({"op": "answer", "id": pid, "sdp": pc.localDescription.sdp})

    tasks = []
    while True:
        line = await reader.readline()
        if not line:
            break
        msg = json.loads(line)
        op = msg["op"]
        if op == "offer":
            tasks.append(asyncio.ensure_future(handle_offer(msg)))
        elif op == "mark":
            peers = {}
            with LOCK:
                for key, (n, ft) in FRAMES.items():
                    pid = QMAP.get(key)
                    if pid is not None:
                        peers.setdefault(pid, {})["frames"] = n
            for r, (p, b) in RECV_STATS.items():
                pid = RMAP.get(r)
                if pid is not None:
                    peers.setdefault(pid, {}).update(pkts=p, bytes=b)
            srtp = set()
            for pc in pcs.values():
                for t in pc.getTransceivers():
                    try:
                        srtp.add(t.receiver.transport._ssl.get_selected_srtp_profile().decode())
                    except Exception:
                        pass
            out({"op": "mark", "t": time.monotonic(), "cpu": cpu(), "peers": peers, "srtp": sorted(srtp)})
        elif op == "quit":
            break
    await asyncio.gather(*[pc.close() for pc in pcs.values()], return_exceptions=True)
    out({"op": "bye", "cpu": cpu()})


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main())
