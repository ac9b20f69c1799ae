#!/bin/bash
cd /app
sort names.txt > sorted.txt
