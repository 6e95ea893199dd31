"""Prints the side-by-side's markdown table from a run directory of scripts/compare.sh:
one JSON file per run, named PEER_nN_rR.json, each holding the keys of
`usermedia bench fanout --json`. Values are medians over the rounds ([min-max] for the
publisher's CPU when there is more than one round); "x usermedia" is the median over the
rounds of the peer's publisher CPU divided by usermedia's at the same N in the same round.

Usage: python3 table.py DIR [--peers usermedia,gst-openh264,...]
"""
import argparse
import glob
import json
import os
import re
import statistics

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--peers", default="usermedia,gst-openh264,gst-x264,aiortc")
args = ap.parse_args()
order = args.peers.split(",")

runs = {}  # (peer, n) -> {round: result}
for path in glob.glob(os.path.join(args.dir, "*_n*_r*.json")):
    m = re.fullmatch(r"(.+)_n(\d+)_r(\d+)\.json", os.path.basename(path))
    if not m:
        continue
    try:
        with open(path) as f:
            res = json.load(f)
    except (OSError, ValueError):
        continue
    if not isinstance(res, dict) or not isinstance(res.get("publisher_cpu_per_media_s"), (int, float)):
        continue
    runs.setdefault((m[1], int(m[2])), {})[int(m[3])] = res
failed = sorted(os.path.basename(p)[:-len(".failed")] for p in glob.glob(os.path.join(args.dir, "*.failed")))

NAMES = {
    "usermedia": "usermedia (openh264, one encode)",
    "gst-openh264": "GStreamer webrtcbin+tee, openh264",
    "gst-x264": "GStreamer webrtcbin+tee, x264 ultrafast",
    "aiortc": "aiortc, x264 ultrafast (an encoder per peer)",
}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def col(peer, n, key):
    return med([r.get(key) for r in runs.get((peer, n), {}).values()])


def f(v, fmt):
    return "–" if v is None else format(v, fmt)


def ratio(peer, n, key="publisher_cpu_per_media_s"):
    mine, base = runs.get((peer, n), {}), runs.get(("usermedia", n), {})
    rs = [mine[r][key] / base[r][key] for r in mine
          if r in base and mine[r].get(key) and base[r].get(key)]
    return med(rs)


ns = sorted({n for (_, n) in runs})
print("| viewers | publisher | publisher CPU s/s | × usermedia | receivers CPU s/s "
      "| fps per viewer min / median | kbit/s per viewer | first frame ms (p50) "
      "| publisher RSS MiB | rounds |")
print("|---|---|---|---|---|---|---|---|---|---|")
for n in ns:
    for peer in order:
        rs = runs.get((peer, n))
        if not rs:
            continue
        cpus = [r["publisher_cpu_per_media_s"] for r in rs.values()]
        cpu = f(med(cpus), ".3f")
        if len(cpus) > 1:
            cpu += f" [{min(cpus):.3f}–{max(cpus):.3f}]"
        x = "1" if peer == "usermedia" else f(ratio(peer, n), ".2f")
        rss = col(peer, n, "publisher_rss_bytes")
        print(f"| {n} | {NAMES.get(peer, peer)} | {cpu} | {x} "
              f"| {f(col(peer, n, 'receiver_cpu_per_media_s'), '.3f')} "
              f"| {f(col(peer, n, 'fps_per_viewer_min'), '.1f')} / "
              f"{f(col(peer, n, 'fps_per_viewer_median'), '.1f')} "
              f"| {f(col(peer, n, 'kbps_per_viewer_median'), '.0f')} "
              f"| {f(col(peer, n, 'first_frame_ms_p50'), '.0f')} "
              f"| {f(rss / 2**20 if rss else None, '.0f')} | {len(rs)} |")

# Per extra viewer: the slope between the smallest and the largest N each peer ran.
def slope(peer, lo, hi, key):
    a, b = col(peer, lo, key), col(peer, hi, key)
    return None if a is None or b is None else (b - a) / (hi - lo)


def ms(v):
    return None if v is None else v * 1000


rows = []
for peer in order:
    have = sorted(n for (p, n) in runs if p == peer)
    if len(have) < 2:
        continue
    lo, hi = have[0], have[-1]
    cpu = slope(peer, lo, hi, "publisher_cpu_per_media_s")
    base = slope("usermedia", lo, hi, "publisher_cpu_per_media_s")
    x = "1" if peer == "usermedia" else (
        f(cpu / base, ".2f") if cpu is not None and base else "–")
    rcv = slope(peer, lo, hi, "receiver_cpu_per_media_s")
    rss = slope(peer, lo, hi, "publisher_rss_bytes")
    rows.append(f"| {NAMES.get(peer, peer)} | {lo}→{hi} | {f(ms(cpu), '.2f')} | {x} "
                f"| {f(ms(rcv), '.2f')} | {f(rss / 1024 if rss is not None else None, '.0f')} |")
if rows:
    print()
    print("| publisher | viewers | publisher CPU per extra viewer (ms/s) | × usermedia (same counts) "
          "| receivers' CPU per extra viewer (ms/s) | publisher RSS per extra viewer (KiB) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
if failed:
    print()
    print("Failed runs (their stderr is kept beside them): " + ", ".join(failed))
