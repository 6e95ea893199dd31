#!/usr/bin/env bash
# The side-by-side: usermedia, GStreamer webrtcbin+tee (openh264 and x264 ultrafast) and aiortc
# publishing the same 1280x720@30 clip at ~1.3 Mbit/s to N viewers in a separate process, on
# loopback inside a private network namespace, interleaved, and one markdown table with each
# publisher's ratio to usermedia in the same run. Installs its peers itself (see --help).
# How to read the table: docs/performance.md, "Side by side: scripts/compare.sh".
set -euo pipefail
CALLER=$PWD
cd "$(dirname "$0")/.."
ROOT=$PWD
# Paths the caller gives (--out, USERMEDIA_BIN, USERMEDIA_COMPARE_VENV, CARGO_TARGET_DIR) are relative to where
# it ran the script, not to the repository.
absolute() {
  case "$1" in
    /*) printf '%s' "$1" ;;
    *) printf '%s/%s' "$CALLER" "$1" ;;
  esac
}

usage() {
  cat <<'EOF'
Usage: scripts/compare.sh [options]

Runs every publisher on the same workload (the clip scripts/compare/frames.py writes as a
Y4M, 1280x720@30, H.264 at 1.3 Mbit/s), N viewers in a separate process, in a loopback-only
network namespace (unshare --net), rounds interleaved with the peer order rotated per round,
and prints one markdown table (also written to DIR/table.md).

Options:
  --viewers LIST   viewer counts (default 1,4,16,64,256; counts over 64 run usermedia only)
  --seconds S      the measured window of each run, after 2 s of warm-up (default 10)
  --rounds R       rounds (default 3)
  --peers LIST     from usermedia,gst-openh264,gst-x264,aiortc (default: all four)
  --out DIR        where each run's raw JSON and stderr go (default target/compare/runs/TIME)
  --usermedia-only only the usermedia half (the CI smoke): installs none of the others
  -h, --help       this text

Installs what is missing: Debian packages through scripts/setup.sh (GStreamer 1.22 with
webrtcbin, libnice, x264 and openh264; python3-gi, python3-numpy, python3-venv, iproute2;
needs root when something is missing), and aiortc 1.16.0 + av 18.1.0 from PyPI in a venv
(USERMEDIA_COMPARE_VENV, default target/compare-venv). usermedia is built with
`cargo build --release` unless USERMEDIA_BIN names a binary.
EOF
}

viewers=1,4,16,64,256
seconds=10
rounds=3
peers=usermedia,gst-openh264,gst-x264,aiortc
out=
usermedia_only=0
others_max=64  # aiortc and GStreamer stop here: 256 of them do not fit on this machine kind

die() {
  echo "compare: $*" >&2
  exit 2
}
need_value() {
  [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"
}
while [ $# -gt 0 ]; do
  case "$1" in
    --viewers) need_value "$@"; viewers=$2; shift 2 ;;
    --seconds) need_value "$@"; seconds=$2; shift 2 ;;
    --rounds) need_value "$@"; rounds=$2; shift 2 ;;
    --peers) need_value "$@"; peers=$2; shift 2 ;;
    --out) need_value "$@"; out=$2; shift 2 ;;
    --usermedia-only) usermedia_only=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[ "$usermedia_only" = 1 ] && peers=usermedia
[[ "$viewers" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--viewers '$viewers' is not a list of positive counts like 1,4,16"
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "--seconds '$seconds' is not a positive whole number"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds '$rounds' is not a positive whole number"
IFS=, read -r -a peer_list <<<"$peers"
[ ${#peer_list[@]} -gt 0 ] || die "--peers is empty"
want_gst=0
want_aiortc=0
for p in "${peer_list[@]}"; do
  case "$p" in
    usermedia) ;;
    gst-openh264 | gst-x264) want_gst=1 ;;
    aiortc) want_aiortc=1 ;;
    *) die "unknown peer '$p' (usermedia, gst-openh264, gst-x264, aiortc)" ;;
  esac
done
IFS=, read -r -a n_list <<<"$viewers"
if [ -n "$out" ]; then
  out=$(absolute "$out")
else
  out=$ROOT/target/compare/runs/$(date -u +%Y%m%dT%H%M%SZ)
fi
mkdir -p "$out"

# ---- installs ----
packages=(iproute2 python3-numpy)
if [ $want_gst = 1 ] || [ $want_aiortc = 1 ]; then
  packages+=(python3-venv)
fi
if [ $want_gst = 1 ]; then
  packages+=(python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-nice gstreamer1.0-tools)
fi
./scripts/setup.sh "${packages[@]}"
PY3=/usr/bin/python3 # Debian's: python3-gi and python3-numpy live there
[ -x "$PY3" ] || PY3=$(command -v python3)

venv=$(absolute "${USERMEDIA_COMPARE_VENV:-$ROOT/target/compare-venv}")
if [ $want_gst = 1 ] || [ $want_aiortc = 1 ]; then
  check='import importlib.metadata as m; assert m.version("aiortc") == "1.16.0" and m.version("av") == "18.1.0"'
  if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "compare: installing aiortc 1.16.0 and av 18.1.0 into $venv" >&2
    "$PY3" -m venv "$venv"
    "$venv/bin/pip" install --quiet aiortc==1.16.0 av==18.1.0
    "$venv/bin/python" -c "$check"
  fi
fi

bin=${USERMEDIA_BIN:+$(absolute "$USERMEDIA_BIN")}
if [ -z "$bin" ] && [[ ",$peers," == *,usermedia,* ]]; then
  export CARGO_TARGET_DIR=$(absolute "${CARGO_TARGET_DIR:-$ROOT/target}")
  cargo build --release --locked --quiet --bin usermedia
  bin=$CARGO_TARGET_DIR/release/usermedia
fi

# ---- the shared clip ----
clipdir=$ROOT/target/compare
# Named after frames.py's hash: a changed generator writes a new clip.
clipname=clip-$(sha256sum scripts/compare/frames.py | cut -c1-12).y4m
clip=$clipdir/$clipname
mkdir -p "$clipdir"
if [ ! -s "$clip" ]; then
  "$PY3" scripts/compare/frames.py "$clip"
fi
devices=$clipdir/devices-$clipname.json
cat >"$devices" <<EOF
{"devices": [{"kind": "videoinput", "deviceId": "clip", "source": {"file": "$clipname"},
  "modes": [{"width": 1280, "height": 720, "frameRate": 30}]}]}
EOF

# ---- one run: PEER N ROUND -> $out/PEER_nN_rROUND.json (or .failed beside its .err) ----
unshare_args=(--net)
[ "$(id -u)" -eq 0 ] || unshare_args+=(--map-root-user)
run_one() {
  local peer=$1 n=$2 round=$3
  local base=$out/${peer}_n${n}_r${round}
  local cmd
  case "$peer" in
    usermedia)
      cmd=("$bin" bench fanout --devices "$devices"
        --constraints '{"video":{"width":1280,"height":720,"frameRate":30}}'
        --viewers "$n" --seconds "$seconds" --bitrate 1300000 --json) ;;
    gst-openh264 | gst-x264)
      cmd=("$PY3" scripts/compare/gst_pub.py --clip "$clip" --n "$n" --encoder "${peer#gst-}"
        --bitrate 1300 --seconds "$seconds" --recv-python "$venv/bin/python") ;;
    aiortc)
      cmd=("$venv/bin/python" scripts/compare/aiortc_pub.py --clip "$clip" --n "$n"
        --bitrate 1300000 --seconds "$seconds") ;;
  esac
  local limit=$((seconds * 2 + 150 + n))
  local rc=0
  timeout --kill-after=10 "$limit" unshare "${unshare_args[@]}" -- \
    sh -c 'PATH="$PATH:/usr/sbin:/sbin"; ip link set lo up && exec "$@"' sh "${cmd[@]}" \
    >"$base.out" 2>"$base.err" || rc=$?
  if [ $rc -eq 0 ] && grep '^{' "$base.out" | tail -n 1 >"$base.json.part" &&
    "$PY3" -c 'import json, sys; d = json.load(open(sys.argv[1])); d["publisher_cpu_per_media_s"]' "$base.json.part" 2>/dev/null; then
    mv "$base.json.part" "$base.json"
    "$PY3" -c 'import json, sys; d = json.load(open(sys.argv[1])); print("%.3f CPU s/s, %.1f fps min" % (d["publisher_cpu_per_media_s"], d["fps_per_viewer_min"]))' "$base.json" >&2
  else
    rm -f "$base.json.part"
    touch "$base.failed"
    echo "FAILED (exit $rc), stderr in $base.err:" >&2
    tail -n 5 "$base.err" >&2
  fi
}

total=0
for n in "${n_list[@]}"; do
  for p in "${peer_list[@]}"; do
    if [ "$p" = usermedia ] || [ "$n" -le $others_max ]; then total=$((total + 1)); fi
  done
done
total=$((total * rounds))
k=0
for round in $(seq 1 "$rounds"); do
  # The peer order rotates by one each round, so no peer always runs first (or after another).
  shift_by=$(((round - 1) % ${#peer_list[@]}))
  rotated=("${peer_list[@]:shift_by}" "${peer_list[@]:0:shift_by}")
  for n in "${n_list[@]}"; do
    for p in "${rotated[@]}"; do
      if [ "$p" != usermedia ] && [ "$n" -gt $others_max ]; then continue; fi
      k=$((k + 1))
      printf 'compare: [%d/%d] round %d, %s, %d viewers ... ' "$k" "$total" "$round" "$p" "$n" >&2
      run_one "$p" "$n" "$round"
    done
  done
done

{
  echo "Side by side, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r), usermedia ${USERMEDIA_BIN:+$bin, tree at }$(git rev-parse --short HEAD 2>/dev/null || echo '?'); 1280x720@30 H.264 1.3 Mbit/s, ${seconds} s windows, ${rounds} round(s); raw runs in $out"
  echo
  "$PY3" scripts/compare/table.py "$out" --peers "$peers"
} | tee "$out/table.md"
if ls "$out"/*.failed >/dev/null 2>&1; then
  exit 1
fi
