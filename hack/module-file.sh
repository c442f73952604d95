#!/usr/bin/env bash
# Prints the path of a file inside a pinned Go module, downloading the module into the Go
# module cache on first use.
#   hack/module-file.sh MODULE VERSION PATH-IN-MODULE
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 MODULE VERSION PATH-IN-MODULE" >&2; exit 2; }
module=$1 version=$2 file=$3
export GOFLAGS=-modcacherw GOTOOLCHAIN=local
dir=$(cd "$(mktemp -d)" && go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[ -f "$dir/$file" ] || { echo "$module $version has no $file" >&2; exit 1; }
echo "$dir/$file"
