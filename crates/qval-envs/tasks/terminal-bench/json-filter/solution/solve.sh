#!/bin/bash
# Reference solution; qval's oracle runs it whole, the noisy collector command by command.
set -euo pipefail
cd /app
python3 - <<'EOF'
import json
users = json.load(open("/app/users.json"))
names = sorted(u["name"] for u in users if u["active"])
open("/app/active.txt", "w").write("".join(n + "\n" for n in names))
EOF
