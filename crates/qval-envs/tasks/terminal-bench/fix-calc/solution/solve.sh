#!/bin/bash
# Reference solution; qval's oracle runs it whole, the noisy collector command by command.
set -euo pipefail
cd /app
sed -i 's/return a - b/return a + b/' calc.py
