#!/bin/sh
# Unpack MathJax 3 (its browser bundles, es5/) into book/_static/mathjax/, git-ignored, so
# that the built site renders formulas with no network. Needs npm (the npm registry).
# book/_ext/offline_mathjax.py points the build at this copy when it is there.
set -eu
version=3.2.2
target="$(dirname "$0")/_static/mathjax"
if [ -f "$target/tex-mml-chtml.js" ] && [ "$(cat "$target/VERSION" 2>/dev/null)" = "$version" ]; then
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
npm pack --silent --pack-destination "$tmp" "mathjax@$version" >/dev/null
rm -rf "$target"
mkdir -p "$target"
tar -xzf "$tmp/mathjax-$version.tgz" -C "$target" --strip-components=2 package/es5
echo "$version" > "$target/VERSION"
echo "MathJax $version unpacked into $target"
