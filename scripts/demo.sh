#!/usr/bin/env bash
# The main command: set up what is missing (scripts/setup.sh, idempotent), then run the demo: the generated
# demo bag replayed into planner -> safety -> controller topics on the tiny random model, recorded, summarised
# and plotted (artifacts/demo/demo_setpoints.png). Extra arguments go to the demo tool, e.g.
#   scripts/demo.sh --model-path /models/Cosmos3-Nano --device cuda --dtype bfloat16 --backend fast
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh"
# shellcheck source=scripts/env.sh
source "$here/scripts/env.sh"
cd "$here"
# The installed package, not the source tree (it has no generated cosmos_ros.msg): `python -m` would put the
# current directory first on sys.path, so drop it. The demo is a developer tool, not a robot executable.
exec python -c 'import sys; del sys.path[0]; from cosmos_ros.tools.demo import main; sys.exit(main())' \
  --out "$here/artifacts/demo" "$@"
