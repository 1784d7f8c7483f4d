#!/usr/bin/env bash
# Build docs/ as an mdBook into target/book (open target/book/index.html).
#
# Installs the two tools it needs with cargo if they are missing (a few
# minutes, once): mdbook, and mdbook-mermaid, which renders the diagrams.
# The book is built from a copy of docs/, because mdbook-mermaid adds its
# JavaScript files to the book's sources.
set -euo pipefail
cd "$(dirname "$0")/.."

MDBOOK_VERSION=0.5.4
MERMAID_VERSION=0.17.1
bin="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$bin:$PATH"

installed() { "$1" --version 2>/dev/null | grep -q " v\?$2\$"; }
if ! installed mdbook "$MDBOOK_VERSION"; then
  echo "build-docs.sh: installing mdbook $MDBOOK_VERSION with cargo" >&2
  cargo install --quiet --locked --no-default-features --features search "mdbook@$MDBOOK_VERSION"
fi
if ! installed mdbook-mermaid "$MERMAID_VERSION"; then
  echo "build-docs.sh: installing mdbook-mermaid $MERMAID_VERSION with cargo" >&2
  cargo install --quiet --locked "mdbook-mermaid@$MERMAID_VERSION"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r docs/. "$work/"
(cd "$work" && RUST_LOG=warn mdbook-mermaid install . >/dev/null)
rm -rf target/book
# (mdbook-mermaid warns that it was built against mdbook 0.5.0: it works with 0.5.4.)
mdbook build "$work" -d "$PWD/target/book" 2>&1 | { grep -v 'was built against version' || true; } >&2
test -f target/book/index.html
echo "build-docs.sh: the book is in target/book/index.html" >&2
