#!/usr/bin/env bash
# verify-codegen.sh regenerates everything hack/update-codegen.sh writes into
# a copy of the repository and fails, showing the difference, if anything
# committed differs from what the generators make of the API types now.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$ROOT"
mkdir -p "$TMP/manifests"
cp go.mod go.sum "$TMP/"
cp -r hack operator "$TMP/"
cp -r manifests/crd "$TMP/manifests/"
"$TMP/hack/update-codegen.sh" "$TMP"
status=0
for p in operator/generated operator/apis manifests/crd; do
	diff -ruN "$p" "$TMP/$p" || status=1
done
if [ "$status" -ne 0 ]; then
	echo "generated code is stale: run 'make codegen' and commit the result" >&2
fi
exit "$status"
