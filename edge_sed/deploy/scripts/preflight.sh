# Step 1, read-only: print the target's facts, refuse on the first failed check (steps.preflight_script).
echo "root_abs=$ROOT"
echo "os=$( (. /etc/os-release && echo "${PRETTY_NAME:-$NAME}") 2>/dev/null || uname -s)"
arch=$(uname -m); echo "arch=$arch"
echo "uid=$(id -u)"; echo "scope=$SCOPE"; echo "unit=$UNIT"
pyver=$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true)
echo "python=$pyver"
venv=no; [ -n "$pyver" ] && "$PY" -c 'import venv, ensurepip' 2>/dev/null && venv=yes; echo "venv=$venv"
d="$ROOT"; while [ ! -e "$d" ]; do d=$(dirname "$d"); done
free_kb=$(df -Pk "$d" | awk 'NR==2 {print $4}'); echo "free_kb=$free_kb"
writable=no; [ -w "$d" ] && writable=yes; echo "writable=$writable"
audio_inputs=0; [ -r /proc/asound/pcm ] && audio_inputs=$(grep -c capture /proc/asound/pcm || true); \
  echo "audio_inputs=$audio_inputs"
echo "current=$(readlink "$ROOT/current" 2>/dev/null || true)"
echo "runtime=$(readlink "$ROOT/runtime" 2>/dev/null || true)"
echo "previous=$(readlink "$ROOT/previous" 2>/dev/null || true)"
root_ok || refuse "install directory $ROOT: a systemd unit can hold only letters, digits \
and ._/+@- there (give another --root)"
case " $ARCHS " in *" $arch "*) ;; *) \
  refuse "target architecture $arch: this bundle was not checked on it (checked on: $ARCHS_TEXT; \
32-bit Pi OS has no LiteRT: use the 64-bit image)";; esac
[ -n "$pyver" ] \
  || refuse "no Python on the target ($PY not found; Debian/Pi OS: apt-get install python3 python3-venv)"
"$PY" -c \
  'import sys; sys.exit(sys.version_info[:2] < tuple(map(int, sys.argv[1].split("."))))' "$MIN_PYTHON" \
  || refuse "Python $pyver on the target, edge-sed needs >= $MIN_PYTHON"
[ "$venv" = yes ] || refuse "$PY has no venv/ensurepip module (Debian/Pi OS: apt-get install python3-venv)"
[ "$writable" = yes ] || refuse "no permission to write $d (needed for $ROOT)"
need=$NEED_KB
[ -f "$ROOT/runtimes/$RUNTIME_ID/.complete" ] || need=$((need + RUNTIME_KB))
[ "$free_kb" -ge "$need" ] \
  || refuse "disk full: $((free_kb / 1024)) MB free under $d, the deploy needs ~$((need / 1024)) MB"
command -v "$SYSTEMCTL_COMMAND" >/dev/null 2>&1 || refuse "no systemd on the target ($SYSTEMCTL not found)"
if [ "$NEEDS_MICROPHONE" = yes ] && [ "$audio_inputs" = 0 ]; then
  echo "WARN: no audio input device found (/proc/asound): the service will fail \
until a microphone is plugged in"
fi
