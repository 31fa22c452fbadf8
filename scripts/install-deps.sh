#!/usr/bin/env bash
# install-deps.sh: installs the Debian packages `make test` needs, if missing.
#   - a C compiler: `go test -race` needs cgo, and a Go-only machine has none;
#   - mariadb-server: scripts/with-mariadb.sh starts a throwaway server from it.
# It does nothing when both are present, so running it every time is cheap.
set -euo pipefail

export PATH="$PATH:/usr/sbin:/sbin"
GO=${GO:-go}

pkgs=()
cc=$("$GO" env CC 2>/dev/null || true)
cc=${cc:-gcc}
if ! command -v "${cc%% *}" >/dev/null 2>&1; then
	pkgs+=(gcc libc6-dev)
fi
if ! command -v mariadbd >/dev/null 2>&1 || ! command -v mariadb-install-db >/dev/null 2>&1; then
	pkgs+=(mariadb-server)
fi
if [[ ${#pkgs[@]} -eq 0 ]]; then
	exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install-deps: need ${pkgs[*]}, but not root and no sudo" >&2
		exit 1
	fi
	sudo=(sudo)
fi
echo "install-deps: installing ${pkgs[*]} with apt-get" >&2
# The lock timeout lets this wait for another apt run instead of failing.
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -q >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get -o DPkg::Lock::Timeout=600 install -y -q "${pkgs[@]}" >&2
