#!/bin/sh
# init.d plug-in: the spec's VScreen.init. Restarts the vscreen daemon when it
# is not running, and reports what it did as application data.
#
# Install: copy to <state>/init.d/10-vscreen-watchdog.sh, chmod 755.
# Configure with VSCREEN_PIDFILE and VSCREEN_START (the command that starts it).
# The agent reports this plug-in's output under the application "vscreen-watchdog".
pidfile="${VSCREEN_PIDFILE:-$NOC_ROOT/run/vscreen.pid}"
start="${VSCREEN_START:-$NOC_ROOT/opt/vscreen/bin/vscreen}"

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo '{"running": true, "restarted": false}'
  exit 0
fi
if [ ! -x "$start" ]; then
  echo "vscreen is not installed at $start" >&2
  echo '{"running": false, "restarted": false}'
  exit 1
fi
mkdir -p "$(dirname "$pidfile")"
# Detach completely: the daemon must not hold the agent's output open.
nohup "$start" >/dev/null 2>&1 </dev/null &
echo $! > "$pidfile"
echo '{"running": true, "restarted": true}'
