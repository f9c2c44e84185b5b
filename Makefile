# The two commands of the README. Both install what they need first (scripts/setup.sh).
.PHONY: setup demo test test-all bench

setup:
	bash scripts/setup.sh

demo: setup
	driftwarden demo --duration 240

test: setup
	python3 -m pytest -q -m "not slow" && bash scripts/fuzz.sh --ci

test-all: setup
	python3 -m pytest -q

bench: setup
	python3 bench/throughput.py && python3 bench/drift.py --quick && python3 bench/concept_drift.py
