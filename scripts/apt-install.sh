#!/bin/sh
# apt-install.sh NAME PACKAGE BINARY... installs Debian's PACKAGE if none of
# the BINARY names is on PATH yet; NAME prefixes its messages. It is
# idempotent: with a binary present it prints where and exits 0. If the
# package truly cannot be installed it prints why and exits non-zero
# (2: not root and no sudo; 3: not a Debian-like system; 4: apt failed).
# The install-*.sh scripts beside it call it.
set -u
if [ $# -lt 3 ]; then
	echo "usage: apt-install.sh NAME PACKAGE BINARY..." >&2
	exit 2
fi
name=$1 pkg=$2
shift 2

find_binary() {
	for c in "$@"; do
		if p=$(command -v "$c" 2>/dev/null); then
			echo "$c $p"
			return 0
		fi
	done
	return 1
}

if found=$(find_binary "$@"); then
	echo "$name: ${found%% *} already installed at ${found#* }"
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "$name: cannot install: no apt-get here (not a Debian-like system); install $pkg by hand" >&2
	exit 3
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO="sudo -n"
	else
		echo "$name: cannot install: not root and no password-less sudo" >&2
		exit 2
	fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "$name: apt-get update" >&2
if ! $SUDO apt-get update -q >&2; then
	echo "$name: cannot install: apt-get update failed (no network to the Debian mirror?)" >&2
	exit 4
fi
echo "$name: apt-get install $pkg" >&2
if ! $SUDO apt-get install -y -q --no-install-recommends "$pkg" >&2; then
	echo "$name: cannot install: apt-get install $pkg failed" >&2
	exit 4
fi
if ! found=$(find_binary "$@"); then
	echo "$name: apt-get reported success but none of $* is on PATH" >&2
	exit 4
fi
echo "$name: installed ${found%% *} at ${found#* }"
