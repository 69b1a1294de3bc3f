# gankit: `make demo` trains the default GAN on the built-in digits; `make test` runs the checks.
PYTHON ?= python3
VENV   ?= .venv
# The CPU build of PyTorch (served locally on our machines); override for another build.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: setup demo test lint bench bench-modes stress clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/gankit train

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts

test: lint
	$(BIN)/python -m pytest -q -n 2  # two workers: the CI machine has 2 cores

# Full strength: 20 SIGKILLs of real `gankit train` processes and 20 of forks; 1000 examples
# per property-based test.
stress: setup
	GANKIT_KILLS=20 OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -s tests/test_crash.py -k kill_loop
	GANKIT_EXAMPLES=1000 $(BIN)/python -m pytest -q tests/test_properties.py

bench: setup
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/time_to_quality.py
	$(BIN)/python benchmarks/classic_ablation.py

# ring8 and grid25 over 10 seeds beside the published mode-collapse results (two processes, one
# thread each); FAST=1 runs one seed with fewer steps; STACKED=<preset> adds stacked-digits.
bench-modes: setup
	$(BIN)/python benchmarks/modes.py $(if $(FAST),--fast) $(if $(STACKED),--stacked --stacked-preset $(STACKED))

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
