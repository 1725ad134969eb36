# Two entry points (see README): `make run` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-dev lint bench

$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(BIN)/.installed-dev: requirements-dev.txt $(BIN)/.installed
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed
install-dev: $(BIN)/.installed-dev

# A single-user local install: the API answers without a token (PUBLIC_API). Browsers still
# see only their own detections. FLASK_PUBLIC_API=false make run turns it off.
run: install
	@echo "make run: PUBLIC_API=$${FLASK_PUBLIC_API:-true} - the API answers without a token (fine on 127.0.0.1;"
	@echo "          each browser still sees only its own detections). See README, 'Who can see what'."
	FLASK_PUBLIC_API=$${FLASK_PUBLIC_API:-true} $(BIN)/flask --app app run

test: install-dev
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check .
