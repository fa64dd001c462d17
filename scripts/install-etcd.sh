#!/bin/sh
# install-etcd.sh installs Debian's etcd-server package if no etcd binary is
# on this machine yet, so that make bench can run a 3-member etcd cluster
# beside cleave in the same run. It is idempotent: with etcd present it prints
# where and exits 0. If etcd truly cannot be installed it prints why and
# exits non-zero (2: not root and no sudo; 3: not a Debian-like system;
# 4: apt failed). bench/run.sh then skips the etcd half and says so.
set -u

if p=$(command -v etcd 2>/dev/null); then
	echo "install-etcd: etcd already installed at $p"
	exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-etcd: cannot install: no apt-get here (not a Debian-like system); install etcd by hand" >&2
	exit 3
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO="sudo -n"
	else
		echo "install-etcd: cannot install: not root and no password-less sudo" >&2
		exit 2
	fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-etcd: apt-get update" >&2
if ! $SUDO apt-get update -q >&2; then
	echo "install-etcd: cannot install: apt-get update failed (no network to the Debian mirror?)" >&2
	exit 4
fi
echo "install-etcd: apt-get install etcd-server" >&2
if ! $SUDO apt-get install -y -q --no-install-recommends etcd-server >&2; then
	echo "install-etcd: cannot install: apt-get install etcd-server failed" >&2
	exit 4
fi
if ! p=$(command -v etcd 2>/dev/null); then
	echo "install-etcd: apt-get reported success but no etcd is on PATH" >&2
	exit 4
fi
echo "install-etcd: installed etcd at $p"
