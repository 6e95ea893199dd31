#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs usermedia.
# Until the service (`serve`) lands, it lists the devices it would capture from: the
# machine's cameras and microphones, or the built-in virtual ones where there are none.
# Any arguments are passed to usermedia instead (e.g. `./scripts/run.sh select --constraints '{"video":true}'`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [ $# -eq 0 ]; then
  set -- devices
fi
exec cargo run --release --quiet -- "$@"
