#!/usr/bin/env bash
# with-mariadb.sh CMD [ARGS...]
#
# Runs CMD with CM_TEST_MYSQL_DSN exported, pointing at a MariaDB server.
# If CM_TEST_MYSQL_DSN is already set, CMD runs against that server unchanged.
# Otherwise a throwaway server is provisioned in a temp dir (installing
# Debian's mariadb-server first if needed), CMD runs, and the server is always
# shut down and its temp dir removed, whatever way the script ends.
# The exit status is CMD's.
#
# The server is configured as cm's connectors need it: ROW binlog with full
# row metadata, utf8mb4 by default. Durability is relaxed for speed.
set -euo pipefail

if [[ $# -eq 0 ]]; then
	echo "usage: $0 COMMAND [ARGS...]" >&2
	exit 2
fi

if [[ -n "${CM_TEST_MYSQL_DSN:-}" ]]; then
	exec "$@"
fi

export PATH="$PATH:/usr/sbin:/sbin"

log() { echo "with-mariadb: $*" >&2; }

install_mariadb() {
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		if command -v sudo >/dev/null 2>&1; then
			sudo=(sudo)
		else
			log "mariadbd not found, and not root and no sudo to install mariadb-server"
			exit 1
		fi
	fi
	log "installing mariadb-server with apt-get"
	# The lock timeout lets this wait for another apt run instead of failing.
	"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -q >&2
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get -o DPkg::Lock::Timeout=600 install -y -q mariadb-server >&2
}

if ! command -v mariadbd >/dev/null 2>&1 || ! command -v mariadb-install-db >/dev/null 2>&1; then
	install_mariadb
fi

D=$(mktemp -d "${TMPDIR:-/tmp}/cm-mariadb.XXXXXX")
pid=""

# alive PID: true while PID runs; false once it is gone or a zombie (a dead
# child stays visible to kill -0 until it is waited for).
alive() {
	local state
	state=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z ]]
}

stop_server() {
	[[ -n $pid ]] || return 0
	if alive "$pid"; then
		mariadb-admin --no-defaults --socket="$D/sock" -uroot --connect-timeout=5 shutdown \
			>/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
		local i
		for ((i = 0; i < 300; i++)); do # 30 s
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			log "mariadbd $pid did not stop in 30 s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
	pid=""
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_server
	rm -rf "$D"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port prints a loopback TCP port nobody listens on. Another process can
# still take it before mariadbd binds, so startup retries on a bind failure.
free_port() {
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	log "no free port found"
	return 1
}

if ! mariadb-install-db --no-defaults --user=root --datadir="$D/data" \
	--auth-root-authentication-method=normal --skip-test-db >"$D/install.log" 2>&1; then
	log "mariadb-install-db failed:"
	tail -n 40 "$D/install.log" >&2
	exit 1
fi

opts=(
	--no-defaults --user=root
	--datadir="$D/data" --socket="$D/sock" --pid-file="$D/mariadbd.pid"
	--bind-address=127.0.0.1 --skip-name-resolve
	--log-bin="$D/data/binlog" --binlog-format=ROW --server-id=1
	--character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci
	--max-connections=500
	--innodb-flush-log-at-trx-commit=2 --sync-binlog=0
)
# FULL row metadata (column names in binlog events) exists since MariaDB 10.5.
if mariadbd --no-defaults --user=root --verbose --help 2>/dev/null | grep -q -- '--binlog-row-metadata'; then
	opts+=(--binlog-row-metadata=FULL)
fi

# start_server PORT: starts mariadbd and waits until it answers (60 s at most).
# Returns 2 if the port was taken, so the caller can try another one.
start_server() {
	local port=$1 i
	: >"$D/error.log"
	mariadbd "${opts[@]}" --port="$port" >>"$D/error.log" 2>&1 &
	pid=$!
	for ((i = 0; i < 600; i++)); do
		if mariadb-admin --no-defaults --socket="$D/sock" -uroot --connect-timeout=2 ping >/dev/null 2>&1; then
			return 0
		fi
		if ! alive "$pid"; then
			wait "$pid" 2>/dev/null || true
			pid=""
			if grep -q 'Address already in use' "$D/error.log"; then
				return 2
			fi
			return 1
		fi
		sleep 0.1
	done
	return 1
}

started=""
for ((attempt = 0; attempt < 5; attempt++)); do
	PORT=$(free_port)
	rc=0
	start_server "$PORT" || rc=$?
	if [[ $rc -eq 0 ]]; then
		started=1
		break
	fi
	[[ $rc -eq 2 ]] || break
	log "port $PORT was taken; retrying on another"
done
if [[ -z $started ]]; then
	log "mariadbd did not start; last lines of its error log:"
	tail -n 40 "$D/error.log" >&2
	exit 1
fi

version=$(mariadb --no-defaults --socket="$D/sock" -uroot -N -B -e 'SELECT VERSION()')
log "MariaDB $version on 127.0.0.1:$PORT (throwaway, datadir $D/data)"

export CM_TEST_MYSQL_DSN="mysql://root@127.0.0.1:$PORT/"

rc=0
"$@" || rc=$?
exit "$rc"
