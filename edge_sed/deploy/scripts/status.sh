# --status: what runs on the target and its last events (steps.status_script).
[ -d "$ROOT" ] || refuse "nothing deployed here ($ROOT does not exist)"
cd "$ROOT"
echo "root=$(pwd -P)"
echo "current=$(readlink current 2>/dev/null || true)"
echo "runtime=$(readlink runtime 2>/dev/null || true)"
echo "previous=$(readlink previous 2>/dev/null || true)"
echo "arch=$(uname -m)"
echo "service=$(sctl is-active "$SERVICE" 2>/dev/null || true)"
sctl show "$SERVICE" -p ActiveEnterTimestamp -p NRestarts -p MainPID 2>/dev/null \
  | sed 's/^ActiveEnterTimestamp=/since=/; s/^NRestarts=/restarts=/; s/^MainPID=/pid=/'
[ -f current/manifest.json ] && echo "manifest=$(tr -d '\n' < current/manifest.json | head -c 200000)"
echo "last_deploy=$(tail -n1 deployments.log 2>/dev/null || true)"
echo "log=$(pwd -P)/logs/events.jsonl"
tail -n "$LINES" logs/events.jsonl 2>/dev/null | sed 's/^/event=/'
