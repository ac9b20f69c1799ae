#!/bin/bash
# Reference solution; qval's oracle runs it whole, the noisy collector command by command.
set -euo pipefail
cd /app
LC_ALL=C sort -u words.txt > unique.txt
