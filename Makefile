# Every target first creates or refreshes .venv (tools/setup_env.sh; seconds when up to date).
# make demo             the full demo (~15 min on 2 cores), outputs in work_dirs/demo/<time>/
# make demo DEMO=quick  the same pipeline in ~4 min (too short to show the effect)
# make test             ruff + the test suite
PY := .venv/bin/python
export OMP_NUM_THREADS ?= 1

.PHONY: setup demo smoke test lint

setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py $(if $(filter quick,$(DEMO)),--quick,)

smoke: setup
	$(PY) tools/smoke_train.py

lint: setup
	.venv/bin/ruff check .

test: lint
	$(PY) -m pytest
