#!/bin/bash
# Reference solution; qval's oracle runs it whole, the noisy collector command by command.
set -euo pipefail
cd /app
grep -E '[02468]$' numbers.txt > even.txt
grep -E '[13579]$' numbers.txt > odd.txt
