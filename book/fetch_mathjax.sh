#!/bin/sh
# Unpack the one MathJax 3 bundle the pages load (tex-mml-chtml.js: TeX and MathML in, CommonHTML
# out), its web fonts and the TeX extensions it loads on demand into book/_static/mathjax/,
# git-ignored, so that the built site renders formulas with no network (about 2 MB, not the
# package's 24 MB). Needs npm (the npm registry).
# book/_ext/offline_mathjax.py points the build at this copy when it is there.
set -eu
version=3.2.2
stamp="$version tex-mml-chtml"
target="$(dirname "$0")/_static/mathjax"
if [ -f "$target/tex-mml-chtml.js" ] && [ "$(cat "$target/VERSION" 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
npm pack --silent --pack-destination "$tmp" "mathjax@$version" >/dev/null
rm -rf "$target"
mkdir -p "$target"
tar -xzf "$tmp/mathjax-$version.tgz" -C "$target" --strip-components=2 \
    package/es5/tex-mml-chtml.js package/es5/output/chtml/fonts/woff-v2 package/es5/input/tex/extensions
echo "$stamp" > "$target/VERSION"
echo "MathJax $version (tex-mml-chtml) unpacked into $target"
