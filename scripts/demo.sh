#!/usr/bin/env bash
# The main job on the local stack (which `make demo` has brought up).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$CLICKSTREAM_HOME"
python -m devstack demo --dag-id clickstream_pipeline
