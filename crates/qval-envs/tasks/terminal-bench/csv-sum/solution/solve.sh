#!/bin/bash
# Reference solution; qval's oracle runs it whole, the noisy collector command by command.
set -euo pipefail
cd /app
python3 -c "import csv; print(f\"{sum(float(r['amount']) for r in csv.DictReader(open('sales.csv'))):.2f}\")" > total.txt
