#!/bin/bash
# Reference solution; qval's oracle runs it whole, the noisy collector command by command.
set -euo pipefail
cd /app/photos
for f in *.jpeg; do if [ -e "$f" ]; then mv -- "$f" "${f%.jpeg}.jpg"; fi; done
