#!/usr/bin/env bash
# Refreshes the embedded uPlot from the npm registry: the version and the
# tarball's integrity hash pinned in uplot.lock (edit both to upgrade; the
# integrity is `npm view uplot@VERSION dist.integrity`). Checks the tarball
# against the pinned hash before copying anything.
#
#   bash pipeline/serve/web/vendor/refresh.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(sed -n 's/^version=//p' "$here/uplot.lock")"
integrity="$(sed -n 's/^integrity=//p' "$here/uplot.lock")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$version" >/dev/null)
tgz="$tmp/uplot-$version.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [ "$got" != "$integrity" ]; then
    echo "uplot-$version.tgz: integrity $got, pinned $integrity" >&2
    exit 1
fi
tar -xzf "$tgz" -C "$tmp"
cp "$tmp/package/dist/uPlot.iife.min.js" "$here/uPlot.iife.min.js"
cp "$tmp/package/dist/uPlot.min.css" "$here/uPlot.min.css"
cp "$tmp/package/LICENSE" "$here/uPlot.LICENSE"
echo "uplot $version: uPlot.iife.min.js, uPlot.min.css, uPlot.LICENSE refreshed"
