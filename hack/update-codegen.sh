#!/usr/bin/env bash
# update-codegen.sh regenerates what is generated from the CleaveStore types
# in operator/apis/cleave/v1alpha1: their deepcopy functions, the typed
# clientset, listers and informers under operator/generated, and the CRD in
# manifests/crd. The generators are the go.mod's tools (k8s.io/code-generator
# and controller-gen), run with `go tool`, so their versions are the module's.
#
# Usage: hack/update-codegen.sh [ROOT]; ROOT (default: this repository) is
# the tree written to, a copy of the repository for hack/verify-codegen.sh.
set -euo pipefail

ROOT=$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}" && pwd -P)
cd "$ROOT"
MODULE=github.com/cleavefs/cleave
APIS=$MODULE/operator/apis/cleave/v1alpha1
OUT=operator/generated
HEADER=hack/boilerplate.go.txt

# Generated files are removed first, so that a type or file deleted from the
# API leaves nothing behind.
rm -rf "$OUT"
rm -f operator/apis/cleave/v1alpha1/zz_generated.deepcopy.go

go tool deepcopy-gen --go-header-file "$HEADER" --output-file zz_generated.deepcopy.go "$APIS"
go tool client-gen --go-header-file "$HEADER" \
	--output-dir "$OUT/clientset" --output-pkg "$MODULE/$OUT/clientset" \
	--clientset-name versioned --input-base "" --input "$APIS"
go tool lister-gen --go-header-file "$HEADER" \
	--output-dir "$OUT/listers" --output-pkg "$MODULE/$OUT/listers" "$APIS"
go tool informer-gen --go-header-file "$HEADER" \
	--output-dir "$OUT/informers" --output-pkg "$MODULE/$OUT/informers" \
	--versioned-clientset-package "$MODULE/$OUT/clientset/versioned" \
	--listers-package "$MODULE/$OUT/listers" "$APIS"
go tool controller-gen crd:crdVersions=v1 paths=./operator/apis/... output:crd:dir=manifests/crd/bases
