#!/usr/bin/env bash
# The test command: set up what is missing (scripts/setup.sh, idempotent), build, then run the whole suite
# against the installed package. Extra arguments go to pytest (e.g. `scripts/test.sh -k safety`).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# COSMOS_ROS_SKIP_SETUP=1: run against the install space as it is (no set-up, no rebuild).
[ "${COSMOS_ROS_SKIP_SETUP:-0}" = 1 ] || bash "$here/scripts/setup.sh"
# shellcheck source=scripts/env.sh
source "$here/scripts/env.sh"
cd "$here"
export COSMOS_ROS_REQUIRE_INSTALL=1
# Hypothesis: the "ci" profile (test/conftest.py) runs thousands of examples per safety property.
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
# Resolved from outside the source tree: from here, `python -c` would put the source tree first on sys.path
# and name it. A cosmos_ros that is not under install/ is refused rather than tested.
pkg="$(cd / && python -c 'import cosmos_ros, os; print(os.path.dirname(cosmos_ros.__file__))')"
case "$pkg" in
  "$here"/install/*) echo "[test] pytest against the install space ($pkg)";;
  *) echo "[test] ERROR: cosmos_ros resolves to $pkg, not to $here/install; run scripts/setup.sh" >&2; exit 1;;
esac
# `pytest` (not `python -m pytest`): the source tree must not shadow the install space on sys.path.
exec pytest -p no:cacheprovider "$@"
