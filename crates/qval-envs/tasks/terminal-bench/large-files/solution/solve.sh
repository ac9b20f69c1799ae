#!/bin/bash
# Reference solution; qval's oracle runs it whole, the noisy collector command by command.
set -euo pipefail
cd /app/data
find . -type f -size +1024c | sed 's|^\./||' | LC_ALL=C sort > /app/large.txt
