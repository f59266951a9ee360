#!/usr/bin/env bash
# Brings up the PostgreSQL and Redis Errand needs on this machine when they
# are not answering: starts the local binaries, and installs them with
# apt-get first when they are missing and we are root. Idempotent: when both
# answer it only says so. With --with-browser it also makes sure Debian's
# Chromium is installed, for the console's browser test.
set -euo pipefail

PG_HOST=${ERRAND_PG_HOST:-127.0.0.1}
PG_PORT=${ERRAND_PG_PORT:-5432}
REDIS_HOST=${ERRAND_REDIS_HOST:-127.0.0.1}
REDIS_PORT=${ERRAND_REDIS_PORT:-6379}

say() { printf 'services: %s\n' "$*"; }
die() { printf 'services: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

pg_ok() {
	port_open "$PG_HOST" "$PG_PORT" || return 1
	if command -v psql >/dev/null; then
		psql "postgres://postgres@$PG_HOST:$PG_PORT/postgres?sslmode=disable&connect_timeout=2" -Atqc 'select 1' >/dev/null 2>&1
	fi
}

redis_ok() {
	port_open "$REDIS_HOST" "$REDIS_PORT" || return 1
	if command -v redis-cli >/dev/null; then
		[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
	fi
}

wait_for() { # name check-fn
	for _ in $(seq 1 60); do
		"$2" && return 0
		sleep 0.5
	done
	die "$1 did not come up within 30 s"
}

apt_install() {
	[ "$(id -u)" = 0 ] || die "$* missing and not root: install them (sudo apt-get install -y $*) and run this again"
	command -v apt-get >/dev/null || die "$* missing and apt-get is not available: install them by hand"
	say "installing $* with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq "$@" >/dev/null
}

# Debian's fresh clusters refuse password-less TCP logins; a development or
# CI machine trusts loopback, like the machines Errand is developed on.
trust_loopback() {
	local hba
	hba=$(ls /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | head -n1) || return 0
	[ -n "$hba" ] || return 0
	grep -q '^host all all 127.0.0.1/32 trust' "$hba" && return 0
	say "trusting loopback connections in $hba (development machine)"
	sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
}

start_postgres() {
	if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
		apt_install postgresql postgresql-client
		trust_loopback
	fi
	command -v pg_ctlcluster >/dev/null || die "PostgreSQL is installed without pg_ctlcluster; start it by hand on $PG_HOST:$PG_PORT"
	local ver
	ver=$(ls /etc/postgresql | sort -V | tail -n1)
	say "starting PostgreSQL $ver"
	if [ "$(id -u)" = 0 ]; then
		pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
	else
		pg_ctlcluster "$ver" main start || die "could not start PostgreSQL; start it by hand on $PG_HOST:$PG_PORT"
	fi
	wait_for PostgreSQL pg_ok
}

start_redis() {
	command -v redis-server >/dev/null || apt_install redis-server
	local dir=${TMPDIR:-/tmp}/errand-redis
	mkdir -p "$dir"
	say "starting Redis on $REDIS_HOST:$REDIS_PORT (no persistence)"
	redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" --appendonly no \
		--dir "$dir" --logfile "$dir/redis.log"
	wait_for Redis redis_ok
}

command -v psql >/dev/null || { [ "$(id -u)" = 0 ] && apt_install postgresql-client || true; }

if [ "${1:-}" = "--with-browser" ]; then
	if command -v chromium >/dev/null || [ -x /usr/bin/chromium ]; then
		say "Chromium is installed"
	else
		apt_install chromium
	fi
fi

if pg_ok; then say "PostgreSQL is up on $PG_HOST:$PG_PORT"; else start_postgres; fi
if redis_ok; then say "Redis is up on $REDIS_HOST:$REDIS_PORT"; else start_redis; fi
