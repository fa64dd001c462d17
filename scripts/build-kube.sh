#!/bin/sh
# build-kube.sh builds the Kubernetes control plane the tests under tests/k8s
# run against: kube-apiserver, kube-controller-manager, kube-scheduler and
# kubectl from k8s.io/kubernetes, and etcd from go.etcd.io/etcd/server/v3,
# all from Go modules through the nested module in scripts/kube (no
# container images, no downloaded release binaries). The binaries go to
# .cache/kube/<version>/bin (ignored by git; KUBE_CACHE overrides .cache/kube)
# and are reused while scripts/kube is unchanged, so a second run takes
# seconds. The first build takes tens of minutes on 2 cores.
# It prints the bin directory as its last line.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/scripts/kube"
version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' "$mod/go.mod")
if [ -z "$version" ]; then
	echo "build-kube: no k8s.io/kubernetes version in $mod/go.mod" >&2
	exit 1
fi
cache=${KUBE_CACHE:-"$root/.cache/kube"}
bin="$cache/$version/bin"
bins="kube-apiserver kube-controller-manager kube-scheduler kubectl etcd"
stamp=$(cat "$mod/go.mod" "$mod/go.sum" "$mod/etcd/main.go" "$0" | sha256sum | cut -c1-16)

have=1
for b in $bins; do
	[ -x "$bin/$b" ] || have=0
done
if [ $have = 1 ] && [ "$(cat "$bin/.stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "build-kube: Kubernetes $version already built" >&2
	echo "$bin"
	exit 0
fi

major=$(echo "$version" | sed 's/^v\([0-9]*\)\..*/\1/')
minor=$(echo "$version" | sed 's/^v[0-9]*\.\([0-9]*\)\..*/\1/')
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w"
# kubectl and the servers read their version from these; without them they
# say v0.0.0-master and kubectl warns about the version skew.
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags="$ldflags -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major"
	ldflags="$ldflags -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	ldflags="$ldflags -X $pkg.buildDate=$date"
done

echo "build-kube: building $bins (Kubernetes $version) into $bin" >&2
echo "build-kube: the first build compiles all of Kubernetes: tens of minutes on 2 cores" >&2
start=$(date +%s)
mkdir -p "$bin"
rm -f "$bin/.stamp"
cd "$mod"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/" \
	k8s.io/kubernetes/cmd/kube-apiserver \
	k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler \
	k8s.io/kubernetes/cmd/kubectl \
	./etcd
echo "$stamp" >"$bin/.stamp"
echo "build-kube: built in $(($(date +%s) - start))s" >&2
echo "$bin"
