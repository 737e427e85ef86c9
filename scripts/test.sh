#!/usr/bin/env bash
# The test command of the README: ./scripts/test.sh
#
# On a fresh Debian/Ubuntu machine with only Go installed it installs redis-server and
# redis-cli (apt-get, with sudo when not root), then runs gofmt, go vet, the whole test suite
# with -race, and a quick benchmark smoke run of bench/ if that module exists.
#
# The tests start their own redis-server processes on free loopback ports
# (internal/redistest); they never use the Debian redis-server service that apt may start on
# 127.0.0.1:6379, and this script neither relies on it nor stops it (it may be shared).
#
# Environment: CI non-empty makes a missing Redis a failure (here and in the tests) instead
# of a skip. GO_TEST_FLAGS adds flags to `go test` (e.g. GO_TEST_FLAGS='-run TestX -v').
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

install_redis() {
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			sudo=(sudo)
		else
			echo "not root and no sudo: cannot install" >&2
			return 1
		fi
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "apt-get not found: not a Debian/Ubuntu machine" >&2
		return 1
	fi
	"${sudo[@]}" apt-get update &&
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server redis-tools
}

step "checking for redis-server and redis-cli"
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
	echo "found $(command -v redis-server) ($(redis-server --version | head -n1))"
else
	echo "redis-server or redis-cli missing: installing redis-server redis-tools with apt-get"
	if ! install_redis; then
		cat >&2 <<'MSG'

*** Could not install Redis. Install it yourself, then run this script again:
***     sudo apt-get update && sudo apt-get install -y redis-server redis-tools
*** (any redis-server >= 7 on PATH will do; the tests start their own processes).
MSG
		if [ -n "${CI:-}" ]; then
			echo "CI is set: failing." >&2
			exit 1
		fi
		echo "CI is not set: continuing; the tests that need Redis will be skipped." >&2
	fi
fi

step "gofmt -l"
unformatted="$(gofmt -l .)"
if [ -n "$unformatted" ]; then
	echo "these files are not gofmt-ed (run gofmt -w on them):" >&2
	echo "$unformatted" >&2
	exit 1
fi

step "go vet ./..."
go vet ./...

step "go test -race -count=1 ./..."
# shellcheck disable=SC2086 # GO_TEST_FLAGS is split on purpose
go test -race -count=1 -timeout 20m ${GO_TEST_FLAGS:-} ./...

if [ -f bench/go.mod ]; then
	step "bench: go vet and a quick benchmark smoke run"
	(cd bench && go vet ./... && go test -run '^$' -bench . -benchtime=100x -count=1 ./...)
fi

step "all checks passed"
