"""What every Python publisher of the side-by-side reports: the same JSON keys as
`usermedia bench fanout --json`, computed the same way from two marks around a steady
window, so one table (table.py) reads all of them."""
import resource
import statistics


def cpu_s():
    """User + system CPU seconds of this process, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_bytes():
    """Resident set size now (VmRSS), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def result(n, window_s, pub_cpu_s, rcv_cpu_s, mark_a, mark_b, firsts_ms, rss_now, rss_before):
    """The common keys. `mark_a`/`mark_b`: the receivers' counters ({peer id: {frames,
    bytes (payload), pkts}}) at the window's ends; `firsts_ms`: per peer, ms from the start of
    negotiation to its first complete frame (peers without one are left out)."""
    fps, kbps = [], []
    for i in range(n):
        a, b = mark_a.get(str(i), {}), mark_b.get(str(i), {})
        fps.append((b.get("frames", 0) - a.get("frames", 0)) / window_s)
        # RTP payload plus the 12-byte fixed header of each packet (bench fanout counts
        # payload and headers; header extensions, a few bytes a packet, are left out).
        octets = b.get("bytes", 0) - a.get("bytes", 0) + 12 * (b.get("pkts", 0) - a.get("pkts", 0))
        kbps.append(octets * 8 / window_s / 1000)
    return dict(
        viewers=n,
        publisher_cpu_per_media_s=pub_cpu_s / window_s,
        receiver_cpu_per_media_s=rcv_cpu_s / window_s,
        fps_per_viewer_min=min(fps),
        fps_per_viewer_median=statistics.median(fps),
        kbps_per_viewer_median=statistics.median(kbps),
        publisher_rss_bytes=rss_now,
        rss_per_viewer_bytes=max(rss_now - rss_before, 0) // n,
        first_frame_ms_p50=statistics.median(firsts_ms) if firsts_ms else None,
        viewers_with_first_frame=len(firsts_ms),
        window_s=window_s,
    )
