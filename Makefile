# Every target first creates or refreshes .venv (tools/setup_env.sh; seconds when up to date).
PY := .venv/bin/python
export OMP_NUM_THREADS ?= 1

.PHONY: setup demo test lint

setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/smoke_train.py

lint: setup
	.venv/bin/ruff check .

test: lint
	$(PY) -m pytest
