# Step 3: unit, flip runtime/current, restart, health check, else switch back (steps.switch_script).
flip() {  # flip LINK TARGET: atomic symlink switch (a reader sees the old or the new link)
  ln -sfn "$2" "$ROOT/.$1.tmp" && mv -T "$ROOT/.$1.tmp" "$ROOT/$1"
}
health() {  # is the service up, and still up after the settle time?
  sleep "$SETTLE"
  sctl is-active --quiet "$SERVICE"
}
if [ "$ACTION" = rollback ]; then
  NEW_B=$(readlink "$ROOT/previous" 2>/dev/null) \
    || refuse "nothing to roll back to on this target (no previous bundle)"
  NEW_R=$(readlink "$ROOT/previous-runtime" 2>/dev/null || readlink "$ROOT/runtime")
  [ -d "$ROOT/$NEW_B" ] && [ -x "$ROOT/$NEW_R/bin/edge-sed" ] \
    || refuse "the previous bundle or runtime is gone from $ROOT"
else
  NEW_B=bundles/$BUNDLE_ID; NEW_R=runtimes/$RUNTIME_ID
  [ -d "$ROOT/$NEW_B" ] && [ -f "$ROOT/$NEW_R/.complete" ] || refuse "the staged bundle or runtime is missing"
fi
cd "$ROOT" || refuse "no $ROOT on the target"
ROOT=$(pwd -P)
OLD_B=$(readlink current 2>/dev/null || true); OLD_R=$(readlink runtime 2>/dev/null || true)
OLD_PB=$(readlink previous 2>/dev/null || true); OLD_PR=$(readlink previous-runtime 2>/dev/null || true)
UNIT_CHANGED=
if [ "$ACTION" = deploy ]; then  # a rollback keeps the unit as it is
  root_ok || refuse "install directory $ROOT: a systemd unit can hold only letters, digits \
and ._/+@- there (give another --root)"
  mkdir -p "$UNIT_DIR" || refuse "no permission to create $UNIT_DIR"
  if [ "$SCOPE" = system ]; then WANTED_BY=multi-user.target; else WANTED_BY=default.target; fi
  write_unit > "$UNIT.tmp" || refuse "no permission to write $UNIT"
  if cmp -s "$UNIT.tmp" "$UNIT"; then rm -f "$UNIT.tmp"; else
    [ -f "$UNIT" ] && cp -p "$UNIT" "$UNIT.prev"
    mv "$UNIT.tmp" "$UNIT" && sctl daemon-reload || refuse "systemctl daemon-reload failed"
    UNIT_CHANGED=1; echo "unit_written=yes"
  fi
  sctl enable "$SERVICE" >/dev/null 2>&1 \
    || echo "WARN: systemctl enable $SERVICE failed (the service will not start at boot)"
  if [ "$SCOPE" = user ]; then loginctl enable-linger "$(id -un)" >/dev/null 2>&1 \
    || echo "WARN: loginctl enable-linger failed: the user service stops at logout \
and does not start at boot"; \
  fi
fi
[ -f "$UNIT" ] || refuse "no unit $UNIT on the target"
if [ "$OLD_B" != "$NEW_B" ] || [ "$OLD_R" != "$NEW_R" ]; then
  [ -n "$OLD_B" ] && flip previous "$OLD_B"
  [ -n "$OLD_R" ] && flip previous-runtime "$OLD_R"
fi
flip runtime "$NEW_R"
flip current "$NEW_B"
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $ACTION $NEW_B $NEW_R" >> deployments.log
echo "current=$NEW_B"; echo "runtime=$NEW_R"; echo "previous=$OLD_B"
if sctl restart "$SERVICE" && health; then
  echo "service=active"
  # prune: runtimes (~200 MB each) nothing points at; bundles beyond the newest $KEEP
  for d in runtimes/*; do
    [ -d "$d" ] && [ "$d" != "$(readlink runtime)" ] && [ "$d" != "$(readlink previous-runtime)" ] \
      && rm -rf "$d" && echo "pruned=$d"
  done
  ls -1t bundles | tail -n "+$((KEEP + 1))" | while read -r b; do
    [ "bundles/$b" != "$(readlink current)" ] && [ "bundles/$b" != "$(readlink previous)" ] \
      && rm -rf "bundles/$b"
  done
else
  state=$(sctl is-active "$SERVICE" 2>/dev/null || true)
  if [ -n "$OLD_B" ] && [ -n "$OLD_R" ] && [ "$OLD_B" != "$NEW_B" -o "$OLD_R" != "$NEW_R" ]; then
    flip runtime "$OLD_R"; flip current "$OLD_B"
    if [ -n "$OLD_PB" ]; then flip previous "$OLD_PB"; else rm -f previous; fi
    if [ -n "$OLD_PR" ]; then flip previous-runtime "$OLD_PR"; else rm -f previous-runtime; fi
    if [ -n "$UNIT_CHANGED" ] && [ -f "$UNIT.prev" ]; then mv "$UNIT.prev" "$UNIT"; sctl daemon-reload; fi
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) auto-rollback $OLD_B $OLD_R" >> deployments.log
    if sctl restart "$SERVICE" && health; then back="it runs again"; else back="it does not start either"; fi
    refuse "service $SERVICE did not stay up on $NEW_B (state: ${state:-unknown}): \
switched back to $OLD_B, $back"
  fi
  refuse "service $SERVICE did not stay up on $NEW_B (state: ${state:-unknown}); \
see: journalctl $( [ "$SCOPE" = user ] && echo --user ) -u $SERVICE"
fi
