#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs `usermedia serve`: it captures
# from the machine's camera and microphone (the built-in virtual ones where there are none)
# and publishes them; open http://127.0.0.1:8080/ in a browser on this machine.
# Any arguments are passed to usermedia instead (e.g. `./scripts/run.sh devices`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [ $# -eq 0 ]; then
  set -- serve
fi
exec cargo run --release --quiet -- "$@"
