#!/bin/bash
[ -L /app/current ] || { echo "FAILED /app/current is not a symbolic link"; exit 1; }
[ "$(readlink /app/current)" = "releases/v2" ] || { echo "FAILED target $(readlink /app/current)"; exit 1; }
[ "$(cat /app/current/VERSION)" = "2.0.0" ] || { echo "FAILED VERSION through the link"; exit 1; }
echo "PASSED"
