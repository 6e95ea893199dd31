"""The side-by-side's shared clip: a cheap synthetic moving test pattern, as I420 frames,
written once to a Y4M file that every publisher in scripts/compare.sh plays.

Copied from the performance anchors' `aiortc/frames.py` (the reference measurements quoted in
docs/performance.md, "Reference points") so the frames are the same ones; only the Y4M
writer (`python3 frames.py OUT.y4m`) is new.

Pattern: 8 vertical colour bars + a band of static pseudo-random texture, the whole
image scrolling 4 px/frame horizontally, plus a white 96x96 box bouncing diagonally.
Cycle length: `n` frames (default 60 = 2 s at 30 fps).
"""
import argparse
import os

import numpy as np

BARS_YUV = [  # BT.601 limited-range approximations of white,yellow,cyan,green,magenta,red,blue,black
    (180, 128, 128), (162, 44, 142), (131, 156, 44), (112, 72, 58),
    (84, 184, 198), (65, 100, 212), (35, 212, 114), (16, 128, 128)]


def make_i420_frames(width, height, n=60, speed=4, seed=1):
    rng = np.random.default_rng(seed)
    w2, h2 = width // 2, height // 2
    Y = np.empty((height, width), np.uint8)
    U = np.empty((h2, w2), np.uint8)
    V = np.empty((h2, w2), np.uint8)
    bw = width // 8
    for i, (y, u, v) in enumerate(BARS_YUV):
        Y[:, i * bw:(i + 1) * bw] = y
        U[:, i * bw // 2:(i + 1) * bw // 2] = u
        V[:, i * bw // 2:(i + 1) * bw // 2] = v
    # textured band in the lower third (static texture, scrolls with the bars)
    band0, band1 = height * 2 // 3, height * 5 // 6
    Y[band0:band1] = rng.integers(16, 235, size=(band1 - band0, width), dtype=np.uint8)
    frames = []
    box = 96
    for k in range(n):
        y = np.roll(Y, speed * k, axis=1)
        u = np.roll(U, speed * k // 2, axis=1)
        v = np.roll(V, speed * k // 2, axis=1)
        # bouncing box (triangle wave)
        px = int(abs(((k * 17) % (2 * (width - box))) - (width - box)))
        py = int(abs(((k * 11) % (2 * (height - box))) - (height - box)))
        y[py:py + box, px:px + box] = 235
        u[py // 2:(py + box) // 2, px // 2:(px + box) // 2] = 128
        v[py // 2:(py + box) // 2, px // 2:(px + box) // 2] = 128
        frames.append(np.ascontiguousarray(np.concatenate([y.ravel(), u.ravel(), v.ravel()])))
    return frames  # list of flat uint8 arrays, I420 layout, len = w*h*3/2


def write_y4m(path, width, height, fps, n):
    """Writes the frames as a Y4M (4:2:0, full-range tag as usermedia's own writer uses)."""
    tmp = f"{path}.{os.getpid()}.part"
    with open(tmp, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in make_i420_frames(width, height, n):
            f.write(b"FRAME\n")
            f.write(frame.tobytes())
    os.replace(tmp, path)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Write the side-by-side's clip as a Y4M file.")
    ap.add_argument("out")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--frames", type=int, default=60)
    a = ap.parse_args()
    write_y4m(a.out, a.width, a.height, a.fps, a.frames)
