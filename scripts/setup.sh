#!/usr/bin/env bash
# Create or refresh .venv with edge-sed and every extra, and install the Debian packages the
# project needs. Safe to run again: it only does what is missing or out of date.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages, one group per line with the stage that needs it.
APT_PACKAGES=(
  libportaudio2 libsndfile1                               # sounddevice, soundfile
  pulseaudio pulseaudio-utils libasound2-plugins          # listen: the virtual microphone in tests
  gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm   # MCU simulator: C kernels on QEMU mps2
  qemu-user qemu-user-static mmdebstrap gcc pkg-config libglib2.0-dev dpkg-dev   # Pi simulator: emulated aarch64 userland + QEMU insn plugin
  openssh-server openssh-client systemd                   # deploy: loopback SSH server; systemd-analyze reads units back
  chromium                                                # report: HTML rendered to PNG
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.edge-sed-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: pip install -e '.[all]' (first time: about a minute)"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[all]' 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import edge_sed, torch, tensorflow, tflite_micro" \
    || { echo "setup: the install is incomplete" >&2; exit 1; }
  touch "$stamp"
fi
