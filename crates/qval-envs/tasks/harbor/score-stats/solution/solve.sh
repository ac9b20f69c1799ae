#!/bin/bash
cd /app
datamash --header-in sum 2 < scores.tsv > sum.txt
datamash --header-in median 2 < scores.tsv > median.txt
