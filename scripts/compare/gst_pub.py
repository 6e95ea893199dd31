"""The side-by-side's GStreamer publisher, "encode once, fan out":

  appsrc (the Y4M clip, looped, paced by clocksync)
    -> x264enc tune=zerolatency speed-preset=ultrafast (or openh264enc)
    -> rtph264pay -> tee -> N x (queue -> webrtcbin)  ==> N aiortc receivers in a separate
                                                          process (aiortc_recv.py: count only)
Prints one JSON line with the keys of `usermedia bench fanout --json`.

Adapted from the performance anchors' `gst/gst_pub.py` (the reference measurements quoted in
docs/performance.md): the source is the shared Y4M file, the output is the common keys; the
pipeline and the Peer class (with its workarounds) are unchanged. The workarounds GStreamer
1.22 needs here: libnice gathers nothing in a loopback-only namespace (127.0.0.1 is added to
the ICE agent by hand), the `ice-agent` getter is under-reffed under PyGObject (one extra
g_object_ref), aiortc's DTLS client must also offer ECDHE-RSA suites (AIORTC_RECV_RSA=1,
GStreamer's certificate is RSA), and openh264's caps need packetization-mode=1.

Run with Debian's python3 (python3-gi), inside a loopback-only network namespace:
  unshare --net sh -c 'ip link set lo up; exec /usr/bin/python3 gst_pub.py --clip C.y4m --n 4 \
      --recv-python VENV/bin/python'
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import Gst, GstWebRTC, GstSdp, GLib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from metrics import cpu_s, rss_bytes, result  # noqa: E402
from y4m import read_y4m  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--clip", required=True, help="the Y4M file to play (4:2:0)")
ap.add_argument("--n", type=int, default=1, help="viewers")
ap.add_argument("--encoder", default="x264", choices=["x264", "openh264"])
ap.add_argument("--bitrate", type=int, default=1300, help="kbit/s")
ap.add_argument("--warmup", type=float, default=2, help="s after every first frame")
ap.add_argument("--seconds", type=float, default=10, help="the measured window, s")
ap.add_argument("--first-frame-timeout", type=float, default=60)
ap.add_argument("--recv-python", required=True, help="the venv's python (aiortc)")
args = ap.parse_args()

Gst.init(None)
_gobject = ctypes.CDLL("libgobject-2.0.so.0")
_gobject.g_object_ref.argtypes = [ctypes.c_void_p]
_gobject.g_object_ref.restype = ctypes.c_void_p
ctypes.pythonapi.PyCapsule_GetPointer.restype = ctypes.c_void_p
ctypes.pythonapi.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
clip = read_y4m(args.clip)
W, H, FPS = clip.width, clip.height, round(clip.fps)
FRAME_NS = Gst.SECOND // FPS

# ---------------- pipeline ----------------
if args.encoder == "x264":
    enc = (f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={args.bitrate} "
           f"key-int-max=250 ! video/x-h264,profile=constrained-baseline")
else:
    enc = (f"openh264enc bitrate={args.bitrate * 1000} complexity=low rate-control=bitrate "
           f"! video/x-h264,profile=constrained-baseline")
src = (f"appsrc name=src is-live=false format=time block=true max-bytes={W*H*3} "
       f"caps=video/x-raw,format=I420,width={W},height={H},framerate={FPS}/1 ! clocksync")
desc = (f"{src} ! {enc} ! rtph264pay config-interval=-1 aggregate-mode=zero-latency "
        f"! application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000,"
        f"packetization-mode=(string)1 ! tee name=t allow-not-linked=true")
pipe = Gst.parse_launch(desc)
tee = pipe.get_by_name("t")

appsrc = pipe.get_by_name("src")
bufs = [Gst.Buffer.new_wrapped(raw) for raw in clip.frames]
state = {"k": 0}


def need_data(src, length):
    k = state["k"]
    b = bufs[k % len(bufs)].copy()  # shallow copy: shares the memory, own timestamps
    b.pts = k * FRAME_NS
    b.dts = b.pts
    b.duration = FRAME_NS
    state["k"] = k + 1
    src.emit("push-buffer", b)


appsrc.connect("need-data", need_data)

# ---------------- receivers process ----------------
rproc = subprocess.Popen(env=dict(os.environ, AIORTC_RECV_RSA="1"),
                         args=[args.recv_python, os.path.join(HERE, "aiortc_recv.py")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
rbuf = b""
firsts, marks = {}, []
peers = []


def rsend(obj):
    rproc.stdin.write((json.dumps(obj) + "\n").encode())


def on_rx(fd, cond):
    global rbuf
    data = os.read(fd, 1 << 20)
    if not data:
        return False
    rbuf += data
    while b"\n" in rbuf:
        line, rbuf = rbuf.split(b"\n", 1)
        m = json.loads(line)
        if m["op"] == "answer":
            peers[m["id"]].on_answer(m["sdp"])
        elif m["op"] == "first":
            firsts[m["id"]] = m["t"]
        elif m["op"] in ("mark", "bye"):
            marks.append(m)
    return True


GLib.io_add_watch(rproc.stdout.fileno(), GLib.IO_IN | GLib.IO_HUP, on_rx)


class Peer:
    def __init__(self, i):
        self.i = i
        self.cands = []
        self.offer_sent = False
        wb = Gst.ElementFactory.make("webrtcbin", f"wb{i}")
        wb.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        try:
            wb.set_property("ice-tcp", False)
        except TypeError:
            pass
        # libnice skips loopback when gathering host candidates; in a lo-only netns it then
        # gathers nothing, so add 127.0.0.1 explicitly (GstWebRTCICE action signal).
        # GStreamer 1.22's ice-agent property getter returns a reference PyGObject does not
        # own (it unrefs it later -> agent destroyed, CRITICALs, segfault); take one extra ref.
        agent = wb.get_property("ice-agent")
        _gobject.g_object_ref(ctypes.pythonapi.PyCapsule_GetPointer(agent.__gpointer__, None))
        ok = agent.emit("add-local-ip-address", "127.0.0.1")
        assert ok, "add-local-ip-address failed"
        q = Gst.ElementFactory.make("queue", f"q{i}")
        q.set_property("leaky", 2)  # downstream: drop old if a peer stalls
        pipe.add(q); pipe.add(wb)
        tpad = tee.request_pad_simple("src_%u")
        tpad.link(q.get_static_pad("sink"))
        sinkpad = wb.request_pad_simple("sink_%u")
        q.get_static_pad("src").link(sinkpad)
        tr = wb.emit("get-transceiver", 0)
        tr.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        wb.connect("on-negotiation-needed", self.on_negotiation_needed)
        wb.connect("on-ice-candidate", self.on_ice_candidate)
        wb.connect("notify::ice-gathering-state", self.on_gathering)
        self.wb = wb

    def on_negotiation_needed(self, wb):
        p = Gst.Promise.new_with_change_func(self.on_offer_created, None)
        wb.emit("create-offer", None, p)

    def on_offer_created(self, promise, _):
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        self.offer = offer
        self.wb.emit("set-local-description", offer, Gst.Promise.new())
        self.maybe_send()

    def on_ice_candidate(self, wb, mline, cand):
        self.cands.append((mline, cand))

    def on_gathering(self, wb, pspec):
        if wb.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self.maybe_send)

    def maybe_send(self):
        if self.offer_sent:
            return False
        if self.wb.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            return False
        ld = self.wb.get_property("local-description")
        if ld is None:
            return False
        sdp = ld.sdp.as_text()
        # aiortc does not trickle: inline the gathered candidates into the m-section(s)
        lines = sdp.replace("\r\n", "\n").rstrip("\n").split("\n")
        outl, mi = [], -1
        def flush(idx):
            for (ml, c) in self.cands:
                if ml == idx and ("a=" + c) not in lines:
                    outl.append("a=" + c)
            if idx >= 0:
                outl.append("a=end-of-candidates")
        for l in lines:
            if l.startswith("m="):
                flush(mi) if mi >= 0 else None
                mi += 1
            outl.append(l)
        flush(mi)
        self.offer_sent = True
        self.sent_sdp = "\r\n".join(outl) + "\r\n"
        rsend({"op": "offer", "id": self.i, "sdp": self.sent_sdp})
        return False

    def on_answer(self, sdp_text):
        res, sdpmsg = GstSdp.SDPMessage.new_from_text(sdp_text)
        ans = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdpmsg)
        self.wb.emit("set-remote-description", ans, Gst.Promise.new())


rss_before = rss_bytes()
t0 = time.monotonic()
for i in range(args.n):
    peers.append(Peer(i))

loop = GLib.MainLoop()
bus = pipe.get_bus()
bus.add_signal_watch()


def on_msg(bus, msg):
    if msg.type == Gst.MessageType.ERROR:
        err, dbg = msg.parse_error()
        print("gst_pub: ERROR:", err, dbg, file=sys.stderr)
        loop.quit()
    elif msg.type == Gst.MessageType.WARNING:
        w, dbg = msg.parse_warning()
        print("gst_pub: WARNING:", w, file=sys.stderr)


bus.connect("message", on_msg)
phase = {}
out = {}
pipe.set_state(Gst.State.PLAYING)


def wait_first():
    if len(firsts) == args.n or time.monotonic() - t0 > args.first_frame_timeout:
        if len(firsts) < args.n:
            print(f"gst_pub: only {len(firsts)}/{args.n} viewers got a first frame",
                  file=sys.stderr)
        GLib.timeout_add(int(args.warmup * 1000), mark_a)
        return False
    return True


def snap():
    return dict(t=time.monotonic(), cpu=cpu_s())


def mark_a():
    phase["a"] = snap()
    rsend({"op": "mark"})
    GLib.timeout_add(int(args.seconds * 1000), mark_b)
    return False


def mark_b():
    phase["b"] = snap()
    phase["rss"] = rss_bytes()
    rsend({"op": "mark"})
    GLib.timeout_add(50, finish)
    return False


def finish():
    if len(marks) < 2:
        return True
    a, b = phase["a"], phase["b"]
    ra, rb = marks[0], marks[1]
    window = b["t"] - a["t"]
    out.update(result(args.n, window, b["cpu"] - a["cpu"], rb["cpu"] - ra["cpu"],
                      ra["peers"], rb["peers"], [1000 * (t - t0) for t in firsts.values()],
                      phase["rss"], rss_before))
    out.update(peer=f"gst-{args.encoder}", bitrate=args.bitrate * 1000,
               srtp_profiles=rb.get("srtp"))
    loop.quit()
    return False


GLib.timeout_add(20, wait_first)
try:
    loop.run()
finally:
    pipe.set_state(Gst.State.NULL)
    try:
        rsend({"op": "quit"})
        rproc.wait(timeout=20)
    except Exception:
        rproc.kill()
if not out:
    sys.exit("gst_pub: no result (see the errors above)")
print(json.dumps(out), flush=True)
