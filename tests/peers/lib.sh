# Shared by the scripts in tests/peers/ (sourced, not run).

# stop_pid FILE: kills the process whose PID is in FILE, and nothing else; waits up
# to 5 s for it to exit (so its port is closed when this returns), then SIGKILL.
# FILE is removed.
stop_pid() {
  local file=$1 pid
  [ -s "$file" ] || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  rm -f "$file"
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  kill -9 "$pid" 2>/dev/null || true
}
