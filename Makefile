# `make demo` and `make test` set everything up on a fresh machine with nothing but Python.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build of torch; override on a CUDA machine, e.g. `make test TORCH=torch==2.13.0+cu126`.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench bench-keras install clean

$(STAMP): pyproject.toml requirements/pinned.txt requirements/reference.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)" -r requirements/pinned.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/reference.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/carousel forecast

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py

# Keras against carousel on the airline series. TensorFlow lives in its own environment, never in $(VENV).
KERAS_VENV  := .venv-keras
KERAS_STAMP := $(KERAS_VENV)/.installed
TENSORFLOW  ?= tensorflow-cpu==2.21.0

$(KERAS_STAMP): pyproject.toml requirements/pinned.txt
	$(PYTHON) -m venv $(KERAS_VENV)
	$(KERAS_VENV)/bin/python -m pip install --quiet "$(TORCH)" -r requirements/pinned.txt "$(TENSORFLOW)"
	$(KERAS_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(KERAS_STAMP)

bench-keras: $(KERAS_STAMP)
	$(KERAS_VENV)/bin/python benchmarks/keras_airline.py

clean:
	rm -rf $(VENV) $(KERAS_VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
