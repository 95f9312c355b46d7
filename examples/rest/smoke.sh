#!/usr/bin/env bash
# smoke.sh builds examples/rest, starts it on a free loopback port and checks
# it with curl: a miss then a hit (Cache-Status), freshness after a PUT with
# no invalidation code, one entry per category, the Remember endpoint, and the
# console at /debug/gormcache.
# It stops the server and exits non-zero on the first failure.
#
#   bash examples/rest/smoke.sh                                  # SQLite + in-process store
#   bash examples/rest/smoke.sh -pg 'host=… dbname=…' -redis 127.0.0.1:6379
#
# Its arguments are passed to the server. main_test.go runs it.
set -euo pipefail
cd "$(dirname "$0")"

tmp=$(mktemp -d)
pid=""
cleanup() {
	if [[ -n $pid ]]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
	echo "smoke: FAIL: $*" >&2
	if [[ -s $tmp/server.log ]]; then
		echo "--- server output:" >&2
		cat "$tmp/server.log" >&2
	fi
	exit 1
}

go build -o "$tmp/rest" . || fail "go build"
# A prefix of its own, so that entries an earlier run left in Redis (with -redis)
# cannot turn the first misses into hits; ignored by the in-process store.
"$tmp/rest" -addr 127.0.0.1:0 -redis-prefix "smoke:$$-$RANDOM:" "$@" >"$tmp/server.log" 2>&1 &
pid=$!

base=""
for _ in $(seq 1 300); do # 30 s at most: seeding a fresh database takes a moment
	base=$(sed -n 's/^listening on \(http:\/\/[^ ]*\)$/\1/p' "$tmp/server.log")
	[[ -n $base ]] && break
	kill -0 "$pid" 2>/dev/null || fail "the server exited"
	sleep 0.1
done
[[ -n $base ]] || fail "the server did not start listening"
echo "smoke: server at $base"

# req METHOD PATH [JSON]: sets status, cache_status, remember and body.
req() {
	local method=$1 path=$2 data=${3-}
	local args=(-sS -X "$method" -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}')
	if [[ -n $data ]]; then
		args+=(-H 'Content-Type: application/json' --data "$data")
	fi
	status=$(curl "${args[@]}" "$base$path") || fail "curl $method $path"
	cache_status=$(header Cache-Status)
	remember=$(header X-Remember)
	body=$(cat "$tmp/body")
}

# header NAME: the value of a header of the last response.
header() {
	{ grep -i "^$1:" "$tmp/headers" || true; } | head -n 1 | cut -d' ' -f2- | tr -d '\r'
}

want_status() {
	[[ $status == "$1" ]] || fail "$method_path: status $status, want $1: $body"
}

# check METHOD PATH STATUS hit|miss|stale|- [JSON]
check() {
	method_path="$1 $2"
	req "$1" "$2" "${5-}"
	want_status "$3"
	case $4 in
	hit) [[ $cache_status == *"; hit"* ]] || fail "$method_path: Cache-Status '$cache_status', want a hit" ;;
	miss) [[ $cache_status == *"fwd=uri-miss"*"stored"* ]] || fail "$method_path: Cache-Status '$cache_status', want fwd=uri-miss, stored" ;;
	stale) [[ $cache_status == *"fwd=stale"*"stored"* ]] || fail "$method_path: Cache-Status '$cache_status', want fwd=stale, stored" ;;
	-) ;;
	esac
	echo "smoke: $method_path -> $status ${cache_status:-}${remember:+X-Remember: $remember}"
}

check GET /articles 200 miss
first=$body
check GET /articles 200 hit
[[ $body == "$first" ]] || fail "the hit's body differs from the miss's"

check GET /stats/expensive 200 -
[[ $remember == miss ]] || fail "GET /stats/expensive: X-Remember '$remember', want miss"
check GET /stats/expensive 200 -
[[ $remember == hit ]] || fail "GET /stats/expensive: X-Remember '$remember', want hit"

check PUT /articles/3 200 - '{"title":"Smoke title"}'
[[ $body == *'"title":"Smoke title"'* ]] || fail "PUT /articles/3 returned $body"
check GET /articles 200 stale
[[ $body == *'"id":3,"title":"Smoke title"'* ]] || fail "GET /articles after the PUT lacks the new title"
check GET /articles 200 hit
check GET /stats/expensive 200 -
[[ $remember == miss ]] || fail "GET /stats/expensive after the PUT: X-Remember '$remember', want miss"

check GET '/products?category=books' 200 miss
check GET '/products?category=games' 200 miss
[[ $body == *'"category":"games"'* && $body != *'"category":"books"'* ]] || fail "?category=games returned other categories"
check GET '/products?category=books' 200 hit
check GET '/products?category=games' 200 hit

check GET /articles/random 200 -
check GET '/debug/gormcache?format=json' 200 -
[[ $body == *'"reason": "volatile_function"'* ]] || fail "the console's JSON lacks the never-cached GET /articles/random"
check GET /debug/gormcache 200 -
[[ $body == *'<svg id="chart"'* ]] || fail "the console's page lacks its chart"

echo "smoke: ok"
