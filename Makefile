# SpeechBERT: `make quickstart` sets everything up and runs the quick start; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEBIAN_PACKAGES := flite espeak-ng sox libsndfile1 pocketsphinx-testdata

.PHONY: setup system-deps quickstart test clean

setup: $(VENV)/.installed

# Speech tools from Debian (flite synthesis, espeak-ng pronunciations, a real recording for tests).
system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: requirements.txt | system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

quickstart: setup
	$(PY) examples/quickstart.py

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) outputs .pytest_cache
