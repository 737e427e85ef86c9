#!/usr/bin/env bash
# The test command of the README: ./scripts/test.sh
#
# On a fresh Debian/Ubuntu machine with only Go installed it installs the servers the tests
# start (see "needs" below; apt-get, with sudo when not root), then runs gofmt, and go vet and
# the whole test suite with -race in every module of the repository, and a quick benchmark
# smoke run of bench/ (with its own tests).
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

# What the tests need, as "command:debian-package" pairs. A module that needs another server
# (etcd, Postgres, ...) adds its pair here; its tests find the command on PATH.
needs=(
	redis-server:redis-server
	redis-cli:redis-tools
	etcd:etcd-server
	curl:curl # cmd/strata-server: the dache interface driven by a client that is not Go
	initdb:postgresql # postgres/: initdb and pg_ctl (Debian keeps them in /usr/lib/postgresql/*/bin)
)

# found reports whether the command of a need is there: on PATH, or for initdb
# where Debian's postgresql package puts it (internal/pgtest looks there too).
found() {
	command -v "$1" >/dev/null 2>&1 && return 0
	[ "$1" = initdb ] && compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

install_packages() {
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
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

step "checking for the servers the tests start: ${needs[*]}"
missing=()
for pair in "${needs[@]}"; do
	if found "${pair%%:*}"; then
		echo "found ${pair%%:*}"
	else
		missing+=("${pair##*:}")
	fi
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "missing: installing ${missing[*]} with apt-get"
	if ! install_packages "${missing[@]}"; then
		cat >&2 <<MSG

*** Could not install ${missing[*]}. Install them yourself, then run this script again:
***     sudo apt-get update && sudo apt-get install -y ${missing[*]}
*** (the tests start their own server processes on free loopback ports).
MSG
		if [ -n "${CI:-}" ]; then
			echo "CI is set: failing." >&2
			exit 1
		fi
		echo "CI is not set: continuing; the tests that need a missing server will be skipped." >&2
	fi
fi

step "gofmt -l"
unformatted="$(gofmt -l .)"
if [ -n "$unformatted" ]; then
	echo "these files are not gofmt-ed (run gofmt -w on them):" >&2
	echo "$unformatted" >&2
	exit 1
fi

# Every Go module of the repository except bench/ (smoke-run below): the core module at the
# top, and the modules that carry heavy dependencies of their own (etcd/, cmd/strata-server,
# ...). Each is vetted and tested with -race.
mapfile -t modules < <(find . -name go.mod -not -path './bench/*' -not -path './.tmp/*' -printf '%h\n' | sort)
for m in "${modules[@]}"; do
	step "$m: go vet ./... && go test -race -count=1 ./..."
	(
		cd "$m"
		go vet ./...
		# shellcheck disable=SC2086 # GO_TEST_FLAGS is split on purpose
		go test -race -count=1 -timeout 20m ${GO_TEST_FLAGS:-} ./...
	)
done

if [ -f bench/go.mod ]; then
	step "bench: go vet, its tests and a quick benchmark smoke run"
	(cd bench && go vet ./... && go test -bench . -benchtime=100x -count=1 ./...)
fi

step "all checks passed"
