#!/usr/bin/env bash
# Installs the system packages usermedia needs to build (see docs/ARCHITECTURE.md, "Facts about our
# dependencies"), only those that are missing. Needs root (apt-get) when something is missing.
#   pkg-config, libasound2-dev  cpal (ALSA)
#   cmake                       opus (bundled libopus)
#   libclang-dev                nokhwa's V4L2 bindings (bindgen)
#   nasm                        openh264's assembly: without it encoding is ~3x slower
#   libvpx-dev                  VP8 (env-libvpx-sys links the system's libvpx via pkg-config)
set -euo pipefail

packages=(pkg-config libasound2-dev cmake libclang-dev nasm libvpx-dev)
# Extra packages a caller asks for (the test command adds the browsers).
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing missing system packages: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=sudo
  else
    echo "setup: need root to install: ${missing[*]} (run as root, or install them yourself)" >&2
    exit 1
  fi
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# No package's service may start on install (coturn's turnserver: tests start their own):
# a policy-rc.d that refuses every start, for the install only, unless one is there already.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# A missing nasm is a build error, not a warning (openh264 would lose its assembly).
command -v nasm >/dev/null || { echo "setup: nasm is still missing" >&2; exit 1; }
