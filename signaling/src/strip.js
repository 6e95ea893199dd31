// usermedia's strip reader for pages, served as /strip.js (one copy for the viewer page and
// the browser tests). It reads the pattern's machine-readable strip (docs/ARCHITECTURE.md,
// "The pattern's machine-readable strip") from a <video> drawn on a canvas: 64 cells
// across the top rows, frame number then capture time (ms since the epoch mod 2^32), MSB
// first, white = 1, luma 0.299 R + 0.587 G + 0.114 B.

// The strip of the picture on `ctx` (`width` × `height`): { frame, time }, or null when a
// cell is ambiguous (not a pattern frame, or a blurred one).
function readStrip(ctx, width, height) {
  const rows = Math.min(Math.max(Math.floor(height / 30), 8), height);
  const y = Math.floor(rows / 2);
  const line = ctx.getImageData(0, y, width, 1).data;
  let frame = 0, time = 0;
  for (let i = 0; i < 64; i++) {
    const a = Math.floor((i * width) / 64), b = Math.floor(((i + 1) * width) / 64);
    const x = Math.floor((a + b) / 2);
    const luma = 0.299 * line[4 * x] + 0.587 * line[4 * x + 1] + 0.114 * line[4 * x + 2];
    if (Math.abs(luma - 128) < 48) return null;
    const bit = luma >= 128 ? 1 : 0;
    if (i < 32) frame = frame * 2 + bit; else time = time * 2 + bit;
  }
  return { frame, time };
}

// The median of `values` (null when empty).
function stripMedian(values) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

// Samples every frame `video` shows (requestVideoFrameCallback, else every 10 ms): the
// frame numbers that differ from the one before and their age when shown (capture → shown, ms: one clock on both ends),
// and live figures in `seen.live` — the last frame number, its latency, the median latency
// of the recent frames, and freezes (no new frame number for more than 3 frame intervals,
// the interval measured from the capture times, as usermedia's analysis counts them).
// Where the browser tells when a frame was decoded (requestVideoFrameCallback's
// `receiveTime` + `processingDuration`, Chromium's for WebRTC video), `decodedLatencies`
// holds capture → decoded too: what `usermedia view` measures, without the browser's
// rendering after it.
// `keep` bounds the frames and latencies kept (the most recent; default: all).
// Set `seen.stop = true` to end it.
function watchStrip(video, keep = Infinity) {
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const seen = {
    frames: [], latencies: [], decodedLatencies: [], unreadable: 0, stop: false,
    live: { frame: null, latencyMs: null, latencyP50Ms: null, freezes: 0, longestFreezeMs: 0, frozenMs: 0 },
  };
  const gaps = [];
  let lastNew = null; // { time: capture time, shown: Date.now() }
  const interval = () => stripMedian(gaps) || 33;
  const sample = (meta) => {
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return;
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    ctx.drawImage(video, 0, 0, w, h);
    const s = readStrip(ctx, w, h);
    if (!s) { seen.unreadable++; return; }
    if (seen.live.frame === s.frame) return;
    const shown = Date.now();
    const latency = (shown % 2 ** 32 - s.time + 2 ** 32) % 2 ** 32;
    if (lastNew) {
      const gap = (s.time - lastNew.time + 2 ** 32) % 2 ** 32;
      if (gap > 0 && gap < 10000) { gaps.push(gap); if (gaps.length > 64) gaps.shift(); }
      const still = shown - lastNew.shown;
      if (still > 3 * interval()) {
        seen.live.freezes++;
        seen.live.longestFreezeMs = Math.max(seen.live.longestFreezeMs, still);
      }
    }
    lastNew = { time: s.time, shown };
    seen.frames.push(s.frame);
    seen.latencies.push(latency);
    if (meta && meta.receiveTime > 0 && meta.processingDuration >= 0) {
      // The performance timeline on the wall clock as of now (timeOrigin drifts from it by
      // milliseconds); a difference over 2^31 is a small negative one (clock jitter).
      const wall = Date.now() - performance.now();
      const decoded = Math.round(wall + meta.receiveTime + meta.processingDuration * 1000);
      let d = (decoded % 2 ** 32 - s.time + 2 ** 32) % 2 ** 32;
      if (d >= 2 ** 31) d -= 2 ** 32;
      seen.decodedLatencies.push(d);
      if (seen.decodedLatencies.length > keep) seen.decodedLatencies.shift();
    }
    if (seen.frames.length > keep) { seen.frames.shift(); seen.latencies.shift(); }
    seen.live.frame = s.frame;
    seen.live.latencyMs = latency;
    seen.live.latencyP50Ms = stripMedian(seen.latencies.slice(-300));
  };
  const frozen = () => {
    const still = lastNew ? Date.now() - lastNew.shown : 0;
    seen.live.frozenMs = still > 3 * interval() ? still : 0;
  };
  if (video.requestVideoFrameCallback) {
    const each = (now, meta) => { if (seen.stop) return; sample(meta); video.requestVideoFrameCallback(each); };
    video.requestVideoFrameCallback(each);
    const timer = setInterval(() => (seen.stop ? clearInterval(timer) : frozen()), 250);
  } else {
    const timer = setInterval(() => { if (seen.stop) clearInterval(timer); else { sample(); frozen(); } }, 10);
  }
  return seen;
}
