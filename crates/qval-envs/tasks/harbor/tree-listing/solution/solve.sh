#!/bin/bash
cd /app
tree /app/project > tree.txt
echo "# docs" > project/docs/README.md
tree /app/project > tree-after.txt
