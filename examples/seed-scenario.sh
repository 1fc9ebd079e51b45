#!/usr/bin/env bash
# The seed scenario with nothing but the eddy CLI:
#   a signup service publishes user/signedup; a mailer (a consumer group of two instances)
#   and an analytics service each react; a fridge reports its level and a shopping service
#   sees it and publishes an order command with a reply channel.
# Run from the repository root after `npm ci`:  bash examples/seed-scenario.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EDDY="node bin/eddy.js"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

$EDDY broker --memory --port 0 --http-port 0 --log-level warn >"$work/broker.out" &
until grep -q 'eddy ready' "$work/broker.out" 2>/dev/null; do sleep 0.1; done
url="mqtt://$(grep -o 'mqtt=[^ ]*' "$work/broker.out" | cut -d= -f2)"
echo "broker: $url"

# Subscribers: two mailer instances share the work, analytics sees every event.
$EDDY sub user/signedup --url "$url" --group mailer --count 2 --json >"$work/mailer-1.out" & mailer1=$!
$EDDY sub user/signedup --url "$url" --group mailer --count 2 --json >"$work/mailer-2.out" & mailer2=$!
$EDDY sub 'user/#' --url "$url" --count 4 --json >"$work/analytics.out" & analytics=$!
$EDDY sub 'fridge/+/level' --url "$url" --count 1 --json >"$work/shopping.out" & shopping=$!
$EDDY sub 'shop/orders' --url "$url" --count 1 -v >"$work/orders.out" & orders=$!
sleep 1

for name in ada grace linus margaret; do
  $EDDY pub user/signedup "{\"user\":\"$name\",\"email\":\"$name@example.com\"}" --url "$url" --header source=signup-service
done
$EDDY pub fridge/kitchen/level '{"milk":0.1}' --url "$url" --header unit=fraction

# The shopping service reacts to the low level with an order command.
wait "$shopping"
if grep -q 'milk' "$work/shopping.out"; then
  $EDDY pub shop/orders '{"item":"milk","quantity":2}' --url "$url" --header reply-to=fridge/kitchen/orders
fi
wait "$mailer1" "$mailer2" "$analytics" "$orders"

echo "--- mailer instance 1 (consumer group 'mailer')"; cat "$work/mailer-1.out"
echo "--- mailer instance 2 (consumer group 'mailer')"; cat "$work/mailer-2.out"
echo "--- analytics (every signup)"; cat "$work/analytics.out"
echo "--- shopping service saw"; cat "$work/shopping.out"
echo "--- order command"; cat "$work/orders.out"
