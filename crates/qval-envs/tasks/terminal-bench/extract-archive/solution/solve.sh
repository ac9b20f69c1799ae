#!/bin/bash
# Reference solution; qval's oracle runs it whole, the noisy collector command by command.
set -euo pipefail
mkdir -p /app/extracted
tar -xzf /app/bundle.tar.gz -C /app/extracted
