# The two commands of the README, and a few more. Everything installs into .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Tests and CI read MNIST and CIFAR-10 from the shared folder beside the checkout.
TEST_DATA ?= $(abspath ../shared/data)
PYTEST_ARGS ?=

.PHONY: install book test test-fast lint lab browser dot clean chapters studies ablations recipes finals tricks

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (cnnlib)" >/dev/null
	touch $@

install: $(VENV)/.installed

# onnxruntime-web (package-lock.json), which the site serves to run the shipped networks in the browser.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --silent

## book: install everything and build the course site into _build/html (book/_ext/live_classifier.py exports the
## checkpoints of results/checkpoints/ to ONNX for the live classifier)
book: install node_modules/.package-lock.json
	-sh book/fetch_mathjax.sh
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "The site is in _build/html/index.html"

## test: install everything, check the house style (ruff, configured in pyproject.toml) and run every test
test: install browser dot node_modules/.package-lock.json lint
	sh book/fetch_mathjax.sh
	CNNLIB_DATA=$(TEST_DATA) $(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

## lint: the formatter and the linter, as CI runs them (`ruff format .` and `ruff check --fix .` mend most)
lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

## test-fast: the tests without the slow ones (notebooks, the site and browsers, Ray, several processes; see
## tests/conftest.py), in two workers as `test`: 2 min 41 s on 2 cores (4 min 7 s in one process; Intel Xeon,
## 2 December 2026). pytest's status, 5 (no tests) included, fails the target.
test-fast: install lint
	CNNLIB_DATA=$(TEST_DATA) $(PY) -m pytest -n 2 --dist loadgroup -m "not slow" $(PYTEST_ARGS)

## chapters: rerun the chapters' full CPU runs in place (CHAPTERS=...; at most 10 minutes of training per network
## on 2 idle cores: 20 for chapter 06 with its plain twin and for each of chapters 08 and 09; nothing
## else may run beside them) and record their metrics in results/cpu/
CHAPTERS ?= 02_alexnet 03_nin 04_vgg 05_googlenet 06_resnet 07_densenet 08_mobilenet 09_efficientnet \
  10_fast_training
chapters: install
	mkdir -p runs
	for chapter in $(CHAPTERS); do \
	  CNNLIB_DATA=$(TEST_DATA) $(VENV)/bin/papermill notebooks/$$chapter.ipynb runs/$$chapter.ipynb -k python3 --cwd . \
	    && mv runs/$$chapter.ipynb notebooks/$$chapter.ipynb \
	    && for run in runs/$$chapter*/; do cp $$run/metrics.json results/cpu/$$(basename $$run).json; done \
	    || exit 1; \
	done
	$(PY) book/figures/make_comparison.py

## studies: rerun the studies' sweeps (STUDIES=..., STUDY_JOBS runs at a time; nothing else may run beside
## them), record their tables in results/studies/<name>/, then re-execute each page on the recorded results
STUDIES ?= 10_study_activation 11_study_init 12_study_loss 13_study_lr 14_study_optimizer 15_study_batch_size \
	16_study_schedule 17_study_regularisation 18_study_depth
STUDY_JOBS ?= 2
studies: install
	mkdir -p runs
	for study in $(STUDIES); do \
	  name=$${study#*_study_}; rm -rf runs/studies/$$name; \
	  CNNLIB_DATA=$(TEST_DATA) $(VENV)/bin/papermill notebooks/$$study.ipynb runs/$$study.ipynb -k python3 --cwd . \
	    -p rerun True -p jobs $(STUDY_JOBS) -p out runs/studies/$$name \
	  && cp runs/studies/$$name/*.csv results/studies/$$name/ \
	  && CNNLIB_DATA=$(TEST_DATA) $(VENV)/bin/papermill notebooks/$$study.ipynb runs/$$study.ipynb -k python3 --cwd . \
	  && mv runs/$$study.ipynb notebooks/$$study.ipynb || exit 1; \
	done

## ablations: rerun the chapters' paper experiments (ABLATIONS=..., each under 20 minutes on 2 idle cores;
## nothing else may run beside them) into results/ablations/<chapter>/, then refresh those sections of the pages
ABLATIONS ?= 02_alexnet 03_nin 04_vgg 05_googlenet 06_resnet 07_densenet 08_mobilenet 09_efficientnet
ablations: install
	CNNLIB_DATA=$(TEST_DATA) bash benchmarks/ablations.sh $(ABLATIONS)
	$(PY) benchmarks/refresh_sections.py --tag ablation $(addprefix notebooks/,$(addsuffix .ipynb,$(ABLATIONS)))

## recipes: each chapter's recipe search on the validation split (RUNS=...: chapters, default all; each arm
## within its preset's budget, one after another on 2 idle cores), kept in results/recipes/<chapter>/
## finals: each chapter network's final runs for seeds 1 and 2 on all 50,000 images, tested once, kept in
## results/cpu/<chapter>/ (seed 0 is the chapter page's own run: make chapters). Both resume where they stopped.
## tricks: the fast chapter's trick table, each trick removed in turn, 3 seeds per arm on the validation split
## (within 60 minutes on 2 idle cores), kept in results/ablations/10_fast_training/
RUNS ?=
recipes finals tricks: install
	CNNLIB_DATA=$(TEST_DATA) $(PY) benchmarks/chapter_runs.py $@ $(RUNS)

## lab: open the notebooks in JupyterLab
lab: install
	$(VENV)/bin/jupyter lab notebooks/

# Headless Chromium for the site tests (Debian's package; needs root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

# graphviz's `dot`, which renders the chapters' block diagrams (cnnlib.diagrams) when a notebook runs (Debian's package).
dot:
	@command -v dot >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq graphviz >/dev/null; }

clean:
	rm -rf _build .pytest_cache runs
