# The two commands of the README. Each creates/refreshes .venv and the Debian packages first.
.PHONY: demo test setup

demo: setup
	.venv/bin/edge-sed demo --out out/demo

test: setup
	.venv/bin/python -m pytest -q

setup:
	bash scripts/setup.sh
