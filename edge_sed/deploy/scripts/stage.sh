# Step 2: unpack, sha256, runtime venv, verify on the target, into bundles/ (steps.stage_script).
mkdir -p "$ROOT/.staging" "$ROOT/bundles" "$ROOT/runtimes" "$ROOT/logs" \
  || refuse "no permission to create $ROOT"
ST=$(mktemp -d "$ROOT/.staging/$BUNDLE_ID.XXXXXX") || refuse "cannot create a staging directory under $ROOT"
if [ -n "$UPLOAD" ]; then TARFILE="$ROOT/$UPLOAD"; else TARFILE=-; fi
trap 'rm -rf "$ST"; [ "$TARFILE" = - ] || rm -f "$TARFILE"' EXIT
tar -xf "$TARFILE" -C "$ST" 2>"$ST/.tar-err" || { \
  grep -q "No space" "$ST/.tar-err" && refuse "disk full while copying the bundle"; \
  refuse "copying the bundle failed: $(tail -n1 "$ST/.tar-err")"; }
cd "$ST/bundle" || refuse "the upload has no bundle"
[ "$(sha256sum model.tflite | cut -d' ' -f1)" = "$SHA256" ] \
  || refuse "model.tflite sha256 on the target does not match the manifest (corrupted in transfer?)"
if [ -n "$CHECK_SHA256" ]; then
  [ "$(sha256sum check.npz | cut -d' ' -f1)" = "$CHECK_SHA256" ] \
    || refuse "check.npz sha256 mismatch on the target (corrupted in transfer?)"
fi
echo "sha256=ok"
RT="$ROOT/runtimes/$RUNTIME_ID"
if [ -f "$RT/.complete" ]; then
  echo "runtime_install=kept"
else
  rm -rf "$RT"
  "$PY" -m venv "$RT" >"$ST/venv.log" 2>&1 \
    || refuse "python -m venv failed: $(tail -n1 "$ST/venv.log")"
  "$RT/bin/python" -m pip install --disable-pip-version-check -q "$ST/wheel/$WHEEL" \
    >"$ST/pip.log" 2>&1 || {
    grep -q "No space left" "$ST/pip.log" \
      && { rm -rf "$RT"; refuse "disk full while installing the runtime"; }
    rm -rf "$RT"; \
    refuse "installing edge-sed on the target failed: $(grep -i error "$ST/pip.log" | tail -n1)"; }
  touch "$RT/.complete"
  echo "runtime_install=new"
fi
"$RT/bin/edge-sed" verify "$ST/bundle" >"$ST/verify.log" 2>&1 \
  || refuse "the bundle fails its check on this target ($(uname -m)): $(tail -n1 "$ST/verify.log")"
echo "target_verify=$(uname -m)"
B="$ROOT/bundles/$BUNDLE_ID"
if [ -d "$B" ] && [ "$(sha256sum "$B/model.tflite" 2>/dev/null | cut -d' ' -f1)" = "$SHA256" ]; then
  echo "bundle=kept"
else
  [ -d "$B" ] && echo "WARN: bundles/$BUNDLE_ID on the target was damaged: replaced"
  rm -rf "$B.old"; [ -d "$B" ] && mv "$B" "$B.old"
  cd "$ROOT" && mv "$ST/bundle" "$B" || refuse "moving the bundle into place failed"
  rm -rf "$B.old"
  echo "bundle=new"
fi
