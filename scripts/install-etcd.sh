#!/bin/sh
# install-etcd.sh installs Debian's etcd-server package if no etcd binary is
# on this machine yet, so that make bench can run a 3-member etcd cluster
# beside cleave in the same run. Idempotent; exit status as apt-install.sh's
# (0: etcd is there; 2: not root and no sudo; 3: not a Debian-like system;
# 4: apt failed). bench/run.sh then skips the etcd half and says why.
exec sh "$(dirname "$0")/apt-install.sh" install-etcd etcd-server etcd
