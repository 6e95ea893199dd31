"""Reads the side-by-side's Y4M clip (4:2:0, 8-bit) into whole I420 frames, so the Python
publishers play exactly the file usermedia plays. No numpy: plain bytes."""


class Clip:
    def __init__(self, width, height, fps, frames):
        self.width, self.height, self.fps, self.frames = width, height, fps, frames


def read_y4m(path):
    with open(path, "rb") as f:
        data = f.read()
    end = data.find(b"\n")
    if not data.startswith(b"YUV4MPEG2 ") or end < 0:
        raise SystemExit(f"{path}: not a Y4M file")
    width = height = None
    fps = 30.0
    for tok in data[:end].split()[1:]:
        key, val = tok[:1], tok[1:].decode()
        if key == b"W":
            width = int(val)
        elif key == b"H":
            height = int(val)
        elif key == b"F":
            num, den = val.split(":")
            fps = int(num) / int(den)
        elif key == b"C" and not val.startswith("420"):
            raise SystemExit(f"{path}: colour space C{val} is not 4:2:0 8-bit")
    if not width or not height:
        raise SystemExit(f"{path}: the header has no W or H")
    size = width * height * 3 // 2
    frames, pos = [], end + 1
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0 or not data.startswith(b"FRAME", pos):
            raise SystemExit(f"{path}: bad frame header at byte {pos}")
        start = nl + 1
        if start + size > len(data):
            raise SystemExit(f"{path}: truncated frame at byte {start}")
        frames.append(data[start:start + size])
        pos = start + size
    if not frames:
        raise SystemExit(f"{path}: no frames")
    return Clip(width, height, fps, frames)
