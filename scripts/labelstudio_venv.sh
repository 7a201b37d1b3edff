#!/usr/bin/env bash
# Create .venv-labelstudio (label-studio pins openai<2, so it never shares the app's venv) and its
# pre-migrated data-folder template. Idempotent: a second run returns in well under a second.
#   scripts/labelstudio_venv.sh [PYTHON]    (PYTHON defaults to .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
exec "$PY" -c "from backend.integrations.labelstudio.server import ensure_venv, ensure_template; ensure_template(ensure_venv())"
