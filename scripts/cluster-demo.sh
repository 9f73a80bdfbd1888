#!/usr/bin/env bash
# Three agentcloud nodes on this machine as one cluster: start them (one
# trust domain through a join bundle), show the cluster status, call
# sessions through every node, kill -9 one node and show its sessions
# answering from the other two. Everything lives in a temporary directory
# that is removed at the end.
#
#   scripts/cluster-demo.sh [BIN]      (make cluster-demo)
#
# DEMO_API_PORTS and DEMO_ROUTE_PORTS (three ports each) and
# DEMO_LEASE_TTL (default 3s) change the defaults.
set -euo pipefail
BIN=$(realpath "${1:-bin/agentcloud}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
read -r -a API <<<"${DEMO_API_PORTS:-7101 7102 7103}"
read -r -a ROUTE <<<"${DEMO_ROUTE_PORTS:-6301 6302 6303}"
TTL=${DEMO_LEASE_TTL:-3s}
WORK=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${DEMO_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
ac() { local n=$1; shift; "$BIN" --data "$WORK/n$n" "$@"; }
show() { local n=$1; shift; echo "\$ agentcloud --data n$n $*"; ac "$n" "$@"; echo; }

echo "== the first node's trust material, as a join bundle for the others (a secret)"
ac 1 cluster join-bundle --file "$WORK/join.json"
for i in 1 2 3; do
	routes=()
	for j in 1 2 3; do [ "$j" = "$i" ] || routes+=("127.0.0.1:${ROUTE[$((j - 1))]}"); done
	join=()
	[ "$i" = 1 ] || join=(--join "$WORK/join.json")
	AGENTCLOUD_SANDBOX_POOL_PROCESS=0 AGENTCLOUD_SANDBOX_POOL_GVISOR=0 "$BIN" serve --data "$WORK/n$i" --listen "127.0.0.1:${API[$((i - 1))]}" --cluster demo --node "n$i" \
		--cluster-listen "127.0.0.1:${ROUTE[$((i - 1))]}" --routes "$(
			IFS=,
			echo "${routes[*]}"
		)" \
		--cluster-lease-ttl "$TTL" --log-format text --log-level warn "${join[@]}" >"$WORK/n$i.log" 2>&1 &
	pids+=($!)
done
for i in 1 2 3; do
	if ! ac "$i" status --wait 2m >/dev/null; then
		echo "node n$i did not start:"
		cat "$WORK/n$i.log"
		exit 1
	fi
done
# Until every node owns its share of the partitions.
for _ in $(seq 1 120); do
	if ac 1 -o json cluster status | grep -q '"unowned": 0' &&
		[ "$(ac 1 -o json cluster status | grep -c '"healthy": true')" = 3 ]; then break; fi
	sleep 0.5
done
show 1 cluster status

echo "== deploy once, call sessions through every node (each runs on its owner)"
show 1 deploy "$ROOT/examples/counter"
# call retries while a session's partition has no owner (503 + Retry-After).
call() {
	local n=$1 s=$2 out
	for _ in $(seq 1 120); do
		if out=$(ac "$n" call "counter/$s" / 2>&1); then
			echo "$out"
			return 0
		fi
		sleep 0.5
	done
	echo "counter/$s did not answer through n$n: $out"
	return 1
}
for s in 1 2 3 4 5 6; do
	n=$(((s - 1) % 3 + 1))
	echo "\$ agentcloud --data n$n call counter/s$s /"
	call "$n" "s$s"
done
echo

echo "== kill -9 node n3"
kill -9 "${pids[2]}"
wait "${pids[2]}" 2>/dev/null || true
start=$(date +%s%N)
echo "== every session answers again through n1 and n2 (n3's after failover)"
for s in 1 2 3 4 5 6; do
	n=$(((s - 1) % 2 + 1))
	echo "\$ agentcloud --data n$n call counter/s$s /"
	call "$n" "s$s"
done
echo "every session answered again $((($(date +%s%N) - start) / 1000000)) ms after the kill"
echo
show 1 cluster status
echo "cluster demo done"
