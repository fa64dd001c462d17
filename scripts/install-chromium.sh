#!/bin/sh
# install-chromium.sh installs Debian's chromium package if no chromium is on
# this machine yet, for the headless browser tests: the loadgen's HTML
# report and the routers' status page (tests/statuspage_test.go). It is idempotent: with chromium present it prints where and exits 0.
# If chromium truly cannot be installed it prints why and exits non-zero
# (2: not root and no sudo; 3: not a Debian-like system; 4: apt failed).
set -u

for c in chromium chromium-browser google-chrome; do
	if p=$(command -v "$c" 2>/dev/null); then
		echo "install-chromium: $c already installed at $p"
		exit 0
	fi
done

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-chromium: cannot install: no apt-get here (not a Debian-like system); install chromium by hand" >&2
	exit 3
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		SUDO="sudo -n"
	else
		echo "install-chromium: cannot install: not root and no password-less sudo" >&2
		exit 2
	fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-chromium: apt-get update" >&2
if ! $SUDO apt-get update -q >&2; then
	echo "install-chromium: cannot install: apt-get update failed (no network to the Debian mirror?)" >&2
	exit 4
fi
echo "install-chromium: apt-get install chromium" >&2
if ! $SUDO apt-get install -y -q --no-install-recommends chromium >&2; then
	echo "install-chromium: cannot install: apt-get install chromium failed" >&2
	exit 4
fi
if ! p=$(command -v chromium 2>/dev/null); then
	echo "install-chromium: apt-get reported success but no chromium is on PATH" >&2
	exit 4
fi
echo "install-chromium: installed chromium at $p"
