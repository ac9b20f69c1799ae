#!/bin/bash
cd /app/notes
dos2unix -q a.txt b.txt
