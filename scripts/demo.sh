#!/usr/bin/env bash
# The main command: set up what is missing (scripts/setup.sh, idempotent), then run the demo.
#
# Default: the closed loop in simulation (cosmos_ros.tools.demo_closed_loop): seeded episodes of the simulated
# Panda with the committed trained tiny policy driving it through planner -> safety -> PID controllers, the
# success summary, and per episode a GIF of the camera view with the planned path and a setpoint plot in
# artifacts/demo/. Extra arguments go to that tool, e.g.
#   scripts/demo.sh --first-seed 2 --episodes 1 --model-path /tmp/my_policy
#
# --replay: the bag-replay demo (cosmos_ros.tools.demo): the generated demo bag replayed into planner -> safety
# -> controller topics on the tiny random model, recorded, summarised and plotted
# (artifacts/demo/demo_setpoints.png). Extra arguments go to that tool, e.g.
#   scripts/demo.sh --replay --model-path /models/Cosmos3-Nano --device cuda --dtype bfloat16 --backend fast
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tool=demo_closed_loop
args=()
for arg in "$@"; do
  if [[ "$arg" == "--replay" ]]; then tool=demo; else args+=("$arg"); fi
done
bash "$here/scripts/setup.sh"
# shellcheck source=scripts/env.sh
source "$here/scripts/env.sh"
cd "$here"
out="$here/artifacts/demo"
# The installed package, not the source tree (it has no generated cosmos_ros.msg): `python -m` would put the
# current directory first on sys.path, so drop it. The demos are developer tools, not robot executables.
status=0
python -c "import sys; del sys.path[0]; from cosmos_ros.tools.$tool import main; sys.exit(main())" \
  --out "$out" "${args[@]+"${args[@]}"}" || status=$?
if [[ "$status" == 0 ]]; then
  echo "[demo.sh] output files are in $out (each one listed above)"
  if [[ "$tool" == demo_closed_loop ]]; then
    echo "[demo.sh] the bag-replay demo on the tiny random model: scripts/demo.sh --replay"
  fi
else
  echo "[demo.sh] the demo failed (exit $status); see the messages above" >&2
fi
exit "$status"
