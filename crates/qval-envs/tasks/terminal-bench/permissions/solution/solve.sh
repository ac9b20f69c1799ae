#!/bin/bash
# Reference solution; qval's oracle runs it whole, the noisy collector command by command.
set -euo pipefail
cd /app
chmod 755 scripts/deploy.sh
chmod 600 secrets/token.txt
