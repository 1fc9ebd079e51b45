#!/usr/bin/env bash
# Eddy's HTTP gateway with nothing but curl: publish events (plain JSON, and a CloudEvent in
# binary mode), watch them arrive on a Server-Sent Events stream, and scrape the Prometheus metrics.
#
# Start a broker first, in another terminal:   npx eddy broker --memory --http-port 8080
# then run:                                     bash examples/http-curl.sh
# EDDY_HTTP points it at another broker (default http://127.0.0.1:8080). Routes: docs/http.md.
set -euo pipefail
EDDY_HTTP=${EDDY_HTTP:-http://127.0.0.1:8080}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

if ! curl -fsS "$EDDY_HTTP/healthz" >/dev/null; then
  echo "no broker answers at $EDDY_HTTP; start one with: npx eddy broker --memory --http-port 8080" >&2
  exit 1
fi

echo "--- streaming user/# as Server-Sent Events for 3 seconds (curl -N, in the background)"
timeout 3 curl -sSN "$EDDY_HTTP/v1/subscribe?filter=user/%23" >"$work/stream.txt" &
stream=$!
sleep 0.5

echo "--- publish a JSON event: 202 once the broker has stored it, with its id and seq"
curl -sS -X POST "$EDDY_HTTP/v1/publish/user/signedup" \
  -H 'content-type: application/json' \
  -H 'eddy-h-source: signup-service' \
  --data '{"email":"ada@example.com"}'
echo

echo "--- publish a CloudEvent in binary mode: the ce-* headers travel as user properties, ce-id is the id"
curl -sS -X POST "$EDDY_HTTP/v1/publish/user/deleted?qos=1" \
  -H 'content-type: application/json' \
  -H 'ce-specversion: 1.0' \
  -H 'ce-id: evt-42' \
  -H 'ce-type: com.example.user.deleted' \
  -H 'ce-source: /accounts' \
  --data '{"user":"grace"}'
echo

echo "--- a refused publish says why: + is a wildcard, not allowed in a topic name"
curl -sS -X POST "$EDDY_HTTP/v1/publish/user/%2B" --data 'x' -w ' (HTTP %{http_code})\n'

wait "$stream" || true # timeout ends curl with status 124
echo "--- what the stream received (id = seq, event = topic, data = payload)"
cat "$work/stream.txt"

echo "--- /metrics: message counters by channel family, connections, refusals"
curl -sS "$EDDY_HTTP/metrics" | grep -E '^eddy_(messages_in_total|messages_out_total|bytes_in_total|connections|publishes_refused_total)'
