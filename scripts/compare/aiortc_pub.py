"""The side-by-side's aiortc publisher: the Y4M clip, paced at its frame rate -> MediaRelay ->
N RTCPeerConnections (aiortc runs one encoder per peer), receivers in a separate process
(aiortc_recv.py). Prints one JSON line with the keys of `usermedia bench fanout --json`.

Adapted from the performance anchors' `aiortc/aiortc_pub.py` (the reference measurements
quoted in docs/performance.md): the source is the shared Y4M file instead of frames made in
memory, x264 runs the `ultrafast` preset by default (encoder-matched with GStreamer's
x264enc) and the bitrate is pinned (aiortc otherwise follows REMB between 0.5 and 3 Mbit/s).

Usage (inside a loopback-only network namespace, in the venv with aiortc 1.16.0):
  unshare --net sh -c 'ip link set lo up; exec VENV/bin/python aiortc_pub.py --clip C.y4m --n 4'
"""
import argparse
import asyncio
import inspect
import json
import logging
import os
import sys
import time

import aioice.ice

# No STUN, no other interface: gather on loopback only.
aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]

import av  # noqa: E402
import aiortc.codecs.h264 as h264mod  # noqa: E402
from aiortc import (RTCPeerConnection, RTCSessionDescription, RTCConfiguration,  # noqa: E402
                    RTCRtpSender, VideoStreamTrack)
from aiortc.contrib.media import MediaRelay  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from metrics import cpu_s, rss_bytes, result  # noqa: E402
from y4m import read_y4m  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--clip", required=True, help="the Y4M file to play (4:2:0)")
ap.add_argument("--n", type=int, default=1, help="viewers")
ap.add_argument("--bitrate", type=int, default=1300000, help="bit/s, pinned")
ap.add_argument("--x264-preset", default="ultrafast", help="'stock' keeps aiortc's (medium)")
ap.add_argument("--warmup", type=float, default=2, help="s after every first frame")
ap.add_argument("--seconds", type=float, default=10, help="the measured window, s")
ap.add_argument("--first-frame-timeout", type=float, default=60)
args = ap.parse_args()

# ---- x264 preset: re-exec the stock method with one extra option ----
if args.x264_preset != "stock":
    src = inspect.getsource(h264mod.H264Encoder._encode_frame)
    src = "\n".join(line[4:] for line in src.splitlines())  # dedent one level
    if '"tune": "zerolatency",' not in src:
        raise SystemExit("aiortc's H264Encoder changed: cannot set the x264 preset")
    src = src.replace('"tune": "zerolatency",',
                      f'"tune": "zerolatency", "preset": "{args.x264_preset}",')
    src = src.replace("def _encode_frame", "def _patched_encode_frame")
    ns = dict(vars(h264mod))
    exec(compile(src, "patched_h264", "exec"), ns)
    h264mod.H264Encoder._encode_frame = ns["_patched_encode_frame"]

# ---- the bitrate: the clamp's bounds and the start value all at the target ----
h264mod.DEFAULT_BITRATE = h264mod.MIN_BITRATE = h264mod.MAX_BITRATE = args.bitrate


class ClipTrack(VideoStreamTrack):
    """The clip's frames, looped, paced in real time by aiortc's next_timestamp (30 fps)."""

    def __init__(self, clip):
        super().__init__()
        self.frames = []
        for raw in clip.frames:
            f = av.VideoFrame(clip.width, clip.height, "yuv420p")
            offset = 0
            for plane, (w, h) in zip(f.planes, [(clip.width, clip.height)] +
                                     [(clip.width // 2, clip.height // 2)] * 2):
                if plane.line_size == w:
                    plane.update(raw[offset:offset + w * h])
                else:
                    padded = bytearray(plane.line_size * h)
                    for row in range(h):
                        start = offset + row * w
                        padded[row * plane.line_size:row * plane.line_size + w] = raw[start:start + w]
                    plane.update(bytes(padded))
                offset += w * h
            self.frames.append(f)
        self.k = 0

    async def recv(self):
        pts, tb = await self.next_timestamp()
        f = self.frames[self.k % len(self.frames)]
        self.k += 1
        f.pts = pts
        f.time_base = tb
        return f


async def main():
    clip = read_y4m(args.clip)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, os.path.join(HERE, "aiortc_recv.py"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**24)
    answers, firsts, marks = {}, {}, asyncio.Queue()
    all_first = asyncio.Event()

    async def rx():
        while True:
            line = await proc.stdout.readline()
            if not line:
                return
            m = json.loads(line)
            if m["op"] == "answer":
                answers[m["id"]].set_result(m["sdp"])
            elif m["op"] == "first":
                firsts[m["id"]] = m["t"]
                if len(firsts) == args.n:
                    all_first.set()
            elif m["op"] in ("mark", "bye"):
                await marks.put(m)
    rx_task = asyncio.ensure_future(rx())

    def send(obj):
        proc.stdin.write((json.dumps(obj) + "\n").encode())

    src = ClipTrack(clip)
    relay = MediaRelay()
    caps = [c for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType in ("video/H264", "video/rtx")]
    pcs = []

    async def negotiate(i):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.append(pc)
        tr = pc.addTransceiver(relay.subscribe(src, buffered=False), direction="sendonly")
        tr.setCodecPreferences(caps)
        await pc.setLocalDescription(await pc.createOffer())
        answers[i] = asyncio.get_running_loop().create_future()
        send({"op": "offer", "id": i, "sdp": pc.localDescription.sdp})
        await proc.stdin.drain()
        sdp = await answers[i]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    rss_before = rss_bytes()
    t0 = time.monotonic()
    await asyncio.gather(*[negotiate(i) for i in range(args.n)])
    try:
        await asyncio.wait_for(all_first.wait(), args.first_frame_timeout)
    except asyncio.TimeoutError:
        print(f"aiortc_pub: only {len(firsts)}/{args.n} viewers got a first frame",
              file=sys.stderr)
    await asyncio.sleep(args.warmup)

    async def snap():
        send({"op": "mark"})
        await proc.stdin.drain()
        c, t = cpu_s(), time.monotonic()
        m = await marks.get()
        return dict(t=t, cpu=c, rcv=m)

    a = await snap()
    await asyncio.sleep(args.seconds)
    b = await snap()
    rss_now = rss_bytes()
    window = b["t"] - a["t"]
    res = result(args.n, window, b["cpu"] - a["cpu"], b["rcv"]["cpu"] - a["rcv"]["cpu"],
                 a["rcv"]["peers"], b["rcv"]["peers"],
                 [1000 * (t - t0) for t in firsts.values()], rss_now, rss_before)
    res.update(peer="aiortc", x264_preset=args.x264_preset, bitrate=args.bitrate,
               srtp_profiles=b["rcv"].get("srtp"))
    send({"op": "quit"})
    await proc.stdin.drain()
    await asyncio.gather(*[pc.close() for pc in pcs], return_exceptions=True)
    try:
        await asyncio.wait_for(proc.wait(), 20)
    except asyncio.TimeoutError:
        proc.kill()
    rx_task.cancel()
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
