#!/usr/bin/env bash
# Run the Eclipse Paho MQTT interoperability client tests against a broker.
#
# Usage: scripts/paho-interop.sh PAHO_DIR HOST PORT [FILTER]
#
#   PAHO_DIR  a checkout of https://github.com/eclipse/paho.mqtt.testing
#             (the repository root or its interoperability/ directory)
#   HOST      broker host (IPv4 address or name)
#   PORT      broker MQTT TCP port
#   FILTER    optional extended regex matched against "FILE:TEST", e.g.
#             'test5', 'client_test5.py:test_will', 'keepalive', ':testBasic$'
#
# Environment:
#   PAHO_TIMEOUT  seconds allowed per test process (default 60)
#   PAHO_LOG_DIR  where logs of failing tests are kept (default /tmp/paho-logs)
#   PAHO_FILES    test files to run (default "client_test.py client_test5.py")
#   PAHO_KEEP_ALL set to 1 to keep the logs of passing tests as well
#
# Every test runs in its own python3 process (so a hung test cannot stall
# the rest); the log of a failing test is kept as
# $PAHO_LOG_DIR/<file-without-.py>.<test>.log.  Exit status: 0 when every
# selected test passed, 1 when any failed, 2 on usage/connection errors
# (or when FILTER selected no test).
#
# The Paho files cannot take --hostname together with a unittest test name
# on their command line (unittest.main() re-parses sys.argv and rejects
# --hostname), so a small inline runner sets sys.argv for the file's own
# getopt parsing and hands unittest only the test name.

set -u

usage() {
  sed -n '2,/^[^#]/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 3 ] && [ $# -le 4 ] || usage
PAHO_DIR=$1
HOST=$2
PORT=$3
FILTER=${4:-}
TIMEOUT=${PAHO_TIMEOUT:-60}
LOG_DIR=${PAHO_LOG_DIR:-/tmp/paho-logs}
FILES=${PAHO_FILES:-client_test.py client_test5.py}
KEEP_ALL=${PAHO_KEEP_ALL:-0}

if [ -f "$PAHO_DIR/interoperability/client_test5.py" ]; then
  INTEROP_DIR=$PAHO_DIR/interoperability
elif [ -f "$PAHO_DIR/client_test5.py" ]; then
  INTEROP_DIR=$PAHO_DIR
else
  echo "error: no interoperability/client_test5.py under $PAHO_DIR" >&2
  exit 2
fi
INTEROP_DIR=$(cd "$INTEROP_DIR" && pwd)

case $PORT in
  ''|*[!0-9]*) echo "error: PORT must be a number, got '$PORT'" >&2; exit 2 ;;
esac

command -v python3 >/dev/null || { echo "error: python3 not found" >&2; exit 2; }
command -v timeout >/dev/null || { echo "error: timeout(1) not found" >&2; exit 2; }

if ! python3 - "$HOST" "$PORT" <<'EOF'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
except OSError as e:
    sys.exit("error: cannot connect to %s:%s: %s" % (sys.argv[1], sys.argv[2], e))
EOF
then
  exit 2
fi

mkdir -p "$LOG_DIR" || exit 2

# Runs one test: argv = FILE HOST PORT TESTNAME
RUNNER='
import os, runpy, sys, unittest
path, host, port, test = sys.argv[1:5]
real_main = unittest.main
def one_test_main(*args, **kwargs):
    kwargs["argv"] = [path, "Test." + test]
    kwargs.setdefault("verbosity", 2)
    return real_main(*args, **kwargs)
unittest.main = one_test_main
sys.argv = [path, "--hostname", host, "--port", port]
runpy.run_path(path, run_name="__main__")
'

# Lists the test names of FILE's Test class, one per line
LISTER='
import sys, unittest, importlib
mod = importlib.import_module(sys.argv[1])
for name in unittest.TestLoader().getTestCaseNames(mod.Test):
    print(name)
'

total_pass=0
total_fail=0
failed_list=()

for file in $FILES; do
  base=${file%.py}
  if [ ! -f "$INTEROP_DIR/$file" ]; then
    echo "error: $INTEROP_DIR/$file not found" >&2
    exit 2
  fi
  if ! tests=$(cd "$INTEROP_DIR" && python3 -c "$LISTER" "$base"); then
    echo "error: could not list tests in $file" >&2
    exit 2
  fi
  pass=0
  fail=0
  for t in $tests; do
    if [ -n "$FILTER" ] && ! printf '%s:%s\n' "$file" "$t" | grep -Eq -- "$FILTER"; then
      continue
    fi
    log="$LOG_DIR/$base.$t.log"
    start=$(date +%s)
    (
      cd "$INTEROP_DIR" &&
      echo "# $file Test.$t against $HOST:$PORT (timeout ${TIMEOUT}s) at $(date -Is)" &&
      PYTHONUNBUFFERED=1 timeout -k 5 "$TIMEOUT" python3 -c "$RUNNER" "$file" "$HOST" "$PORT" "$t"
    ) >"$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ $rc -eq 0 ]; then
      pass=$((pass + 1))
      printf 'PASS  %-18s %-32s %3ss\n' "$file" "$t" "$secs"
      [ "$KEEP_ALL" = 1 ] || rm -f "$log"
    else
      fail=$((fail + 1))
      failed_list+=("$file:$t")
      why="rc=$rc"
      [ $rc -eq 124 ] || [ $rc -eq 137 ] && why="timeout after ${TIMEOUT}s"
      echo "# exit status $rc ($why)" >>"$log"
      printf 'FAIL  %-18s %-32s %3ss  (%s; log: %s)\n' "$file" "$t" "$secs" "$why" "$log"
    fi
  done
  echo "$file: $pass passed, $fail failed"
  total_pass=$((total_pass + pass))
  total_fail=$((total_fail + fail))
done

echo "total: $total_pass passed, $total_fail failed"
if [ $((total_pass + total_fail)) -eq 0 ]; then
  echo "error: no test matched '$FILTER'" >&2
  exit 2
fi
if [ $total_fail -gt 0 ]; then
  printf 'failed: %s\n' "${failed_list[*]}"
  exit 1
fi
exit 0
