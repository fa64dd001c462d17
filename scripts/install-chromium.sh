#!/bin/sh
# install-chromium.sh installs Debian's chromium package if no chromium is on
# this machine yet, for the headless browser tests: the loadgen's HTML
# report and the routers' status page. Idempotent; exit status as
# apt-install.sh's (0: chromium is there; 2: not root and no sudo; 3: not a
# Debian-like system; 4: apt failed).
exec sh "$(dirname "$0")/apt-install.sh" install-chromium chromium chromium chromium-browser google-chrome
