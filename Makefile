# The two commands of README.md:  `make demo`  and  `make test`  (each installs first).
PYTHON ?= python
PIP = $(PYTHON) -m pip
STAMP = .install.stamp

.PHONY: install demo test bench

# pip re-checks nothing when the stamp is newer than every file that says what to install.
$(STAMP): requirements.txt requirements-nodeps.txt setup.py $(wildcard scripts/install_detectron2.sh requirements-detectron2.txt)
	$(PIP) install -r requirements.txt
	# vissl's declared pins (numpy 1.19, hydra 1.0, ...) have no Python 3.11 wheels: its real needs are in requirements.txt
	$(PIP) install --no-deps -r requirements-nodeps.txt
	@if [ -f scripts/install_detectron2.sh ]; then PYTHON=$(PYTHON) bash scripts/install_detectron2.sh; fi
	# compat mode: setuptools' default editable finder hides hydra_plugins/ from hydra's plugin discovery
	$(PIP) install --no-deps -e . --config-settings editable_mode=compat
	$(PYTHON) -c "import vissl_ext, vissl; print('vissl_ext', vissl_ext.__version__, 'on vissl', vissl.__version__)"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PYTHON) tools/demo.py

test: install
	$(PYTHON) -m pytest

bench: install
	for b in benchmarks/bench_*.py; do $(PYTHON) $$b || exit 1; done
