#!/usr/bin/env bash
# Re-fetches the admin UI's vendored libraries from the npm registry at their pinned versions and
# records their sha256 in README.md. The UI needs no Node at build or run time; this does, once.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# file in vendor/ | npm package@version | path in the package | licence | licence file here
files=(
  "preact-htm.mjs|htm@3.1.1|package/preact/standalone.mjs|Apache-2.0 (htm) and MIT (Preact 10, bundled: \`LICENSE.preact\`)|LICENSE.htm"
  "uPlot.iife.min.js|uplot@1.6.32|package/dist/uPlot.iife.min.js|MIT|LICENSE.uplot"
  "uPlot.min.css|uplot@1.6.32|package/dist/uPlot.min.css|MIT|LICENSE.uplot"
)
sed -i '/^| `/d' README.md
for entry in "${files[@]}"; do
  IFS='|' read -r file spec inner licence licence_file <<<"$entry"
  dir="$work/${spec//[@\/]/_}"
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "$spec" >/dev/null && tar xzf ./*.tgz)
  fi
  cp "$dir/$inner" "$file"
  cp "$dir/package/LICENSE" "$licence_file"
  sum=$(sha256sum "$file" | cut -d' ' -f1)
  echo "| \`$file\` | \`$spec\` | \`${inner#package/}\` | $licence (\`$licence_file\`) | \`$sum\` |" >>README.md
done
# htm's standalone build bundles Preact 10 (MIT), whose licence text htm's package does not carry.
(cd "$work" && mkdir -p preact && cd preact && npm pack --silent preact@10 >/dev/null && tar xzf ./*.tgz)
cp "$work/preact/package/LICENSE" LICENSE.preact
echo "vendored files refreshed; review with: git diff -- $(pwd)"
