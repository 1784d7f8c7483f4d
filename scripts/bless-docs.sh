#!/usr/bin/env bash
# Refresh the docs' transcripts from a real run: every command's shown output
# that no longer matches (after normalising pids, dates, digests...) is
# replaced by what the command printed. Never edit a transcript by hand.
#
#   scripts/bless-docs.sh            # every doc
#   scripts/bless-docs.sh ch3 README # the docs whose path contains ch3 or README
#
# Needs root, as the transcripts do (see tests/transcripts/sandbox.rs).
# Review the result with `git diff docs/` before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
SNAPSHOTS=overwrite cargo test --test transcripts -- "$@"
# A blessed doc must now pass as it is.
cargo test --test transcripts -- "$@"
