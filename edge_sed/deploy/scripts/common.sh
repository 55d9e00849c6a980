# Start of every remote script, after its VALUES (see edge_sed/deploy/steps.py: _common).
set -u
refuse() { echo "REFUSED: $*"; exit "$REFUSED_EXIT"; }
case "$ROOT" in "~") ROOT=$HOME;; "~/"*) ROOT=$HOME/${ROOT#??};; esac
if [ "$SCOPE" = auto ]; then if [ "$(id -u)" = 0 ]; then SCOPE=system; else SCOPE=user; fi; fi
if [ "$SCOPE" = system ]; then UNIT_DIR=/etc/systemd/system; else UNIT_DIR="$HOME/.config/systemd/user"; fi
UNIT="$UNIT_DIR/$SERVICE.service"
root_ok() {  # the unit holds $ROOT unquoted (systemd reads whitespace, quotes, \, $ and % in it)
  case "$ROOT" in *[!A-Za-z0-9._/+@-]*) return 1;; esac
}
