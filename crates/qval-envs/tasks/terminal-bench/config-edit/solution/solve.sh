#!/bin/bash
# Reference solution; qval's oracle runs it whole, the noisy collector command by command.
set -euo pipefail
cd /app
sed -i 's/^port = 8000$/port = 8080/' config.ini
sed -i 's/^debug = true$/debug = false/' config.ini
