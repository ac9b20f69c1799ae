#!/bin/bash
mkdir -p /logs/verifier
ok=1
for f in a.txt b.txt; do
  [ -f "/app/notes/$f" ] || ok=0
  grep -q $'\r' "/app/notes/$f" 2>/dev/null && ok=0
done
[ "$(cat /app/notes/a.txt 2>/dev/null)" = "$(printf 'first line\nsecond line')" ] || ok=0
echo $ok > /logs/verifier/reward.txt
