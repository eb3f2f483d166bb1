# Fresh-machine entry points (see README). Every target installs what it needs.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
OUT ?= demo_out

.PHONY: setup test demo bench

# torch is pinned: this version is a local CPU wheel here, while an unpinned
# torch pulls several GB of CUDA packages.
setup:
	$(PIP) install --quiet --disable-pip-version-check "torch==2.13.0"
	$(PIP) install --quiet --disable-pip-version-check -e ".[onnx]" pytest flake8 pydocstyle

test: setup
	$(PYTHON) -m pytest -q

demo: setup
	$(PYTHON) -m reloc_ros.cli demo --out $(OUT)

bench: setup
	$(PYTHON) -m reloc_ros.cli bench --json benchmarks/data.json
	$(PYTHON) -m reloc_ros.cli bench --suite runtime --json benchmarks/runtime.json --markdown benchmarks/runtime.md
	$(PYTHON) -m reloc_ros.cli bench --suite full --json benchmarks/results.json --markdown benchmarks/results.md
	$(PYTHON) -m reloc_ros.cli bench --suite camnet --json benchmarks/camnet.json --markdown benchmarks/camnet.md
	$(PYTHON) -m reloc_ros.cli bench --suite pmnet --json benchmarks/pmnet.json --markdown benchmarks/pmnet.md
	$(PYTHON) -m reloc_ros.cli bench --suite verify --json benchmarks/verify.json --markdown benchmarks/verify.md
