#!/usr/bin/env bash
# How long each console page takes to show its answer, in Debian's headless
# Chromium, with a year of a city's data: 100,000 settlements of 20,000
# persons at 20 hospitals over the business days of 2026, and 365
# applications (issue 22's target: every page under 1 s). Each page is
# timed from its button to its answer, five times; the medians are printed
# with their ratio to the policy page (one small record), measured in the
# same run. Release build; the data is made through the API first (about
# a minute here). Sizes: MEDASSIST_CONSOLE_SETTLEMENTS, MEDASSIST_CONSOLE_RUNS.
set -euo pipefail
cd "$(dirname "$0")/.."
export MEDASSIST_CONSOLE_SETTLEMENTS="${MEDASSIST_CONSOLE_SETTLEMENTS:-100000}"
export MEDASSIST_CONSOLE_RUNS="${MEDASSIST_CONSOLE_RUNS:-5}"
cargo test --release --test api -- --ignored --exact --nocapture \
    console::pages_with_a_year_of_a_city
