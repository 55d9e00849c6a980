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

# CMSIS-DSP's C sources for the MCU front end (firmware_sim/c/frontend_cmsis.c): the cmsisdsp
# source distribution from PyPI, checked against its published SHA-256, unpacked into .cache/.
CMSIS_SDIST=https://files.pythonhosted.org/packages/2c/ec/0decbb48985d2eb98739a9bbf4ba090278cc492a7c1a5d5b907e8baf67b5/cmsisdsp-1.10.3.tar.gz
CMSIS_SHA256=307d32298faa7c58db912851027fce35f886fec7eb1a27c4b309ce1a97f47519
if [ ! -f .cache/cmsisdsp-1.10.3/Include/arm_math.h ]; then
  echo "setup: fetching the CMSIS-DSP 1.10.3 sources (cmsisdsp sdist, PyPI)"
  mkdir -p .cache
  python3 - "$CMSIS_SDIST" "$CMSIS_SHA256" <<'PY'
import hashlib, io, sys, tarfile, urllib.request
data = urllib.request.urlopen(sys.argv[1], timeout=300).read()
if hashlib.sha256(data).hexdigest() != sys.argv[2]:
    sys.exit("setup: the cmsisdsp sdist does not match its SHA-256")
with tarfile.open(fileobj=io.BytesIO(data)) as tar:
    members = [m for m in tar.getmembers() if m.name.startswith(("cmsisdsp-1.10.3/Include/", "cmsisdsp-1.10.3/PrivateInclude/",
               "cmsisdsp-1.10.3/Source/", "cmsisdsp-1.10.3/LICENSE"))]
    tar.extractall(".cache", members=members)
PY
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
