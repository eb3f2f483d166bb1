# Fresh-machine entry points (see README). Every target installs what it needs.
#
# Everything goes into a virtual environment (.venv): PEP 668 systems (Debian 12, Ubuntu 24.04) refuse a
# system-wide pip install. It sees the system's site-packages, so ROS 2's rclpy (after sourcing its
# setup.bash) stays importable. VENV= (empty) installs into PYTHON's own environment instead.
PYTHON ?= python3
VENV ?= .venv
OUT ?= demo_out
# torch: 2.13.0 from PyPI is the CUDA build on Linux x86_64 (several GB) and a CPU build elsewhere; give
# PyTorch's CPU index for the small CPU-only wheel, e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
# The flake8 plugins a ROS 2 development machine has (what ament_flake8 runs with there).
LINT = flake8 pydocstyle flake8-docstrings flake8-builtins flake8-comprehensions flake8-import-order flake8-quotes \
       flake8-blind-except flake8-class-newline flake8-deprecated

ifeq ($(strip $(VENV)),)
PY := $(PYTHON)
VENV_PY :=
else
PY := $(VENV)/bin/python
VENV_PY := $(VENV)/bin/python
endif
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: setup test demo bench

$(VENV)/bin/python:
	$(PYTHON) -m venv --system-site-packages $(VENV)
	touch $(VENV)/COLCON_IGNORE

setup: $(VENV_PY)
	$(PIP) "$(TORCH)" $(if $(strip $(TORCH_INDEX)),--index-url $(TORCH_INDEX))
	$(PIP) -e ".[onnx,test]" $(LINT)

test: setup
	$(PY) -m pytest -q

demo: setup
	$(PY) -m reloc_ros.cli demo --out $(OUT)

bench: setup
	$(PY) -m reloc_ros.cli bench --json benchmarks/data.json
	$(PY) -m reloc_ros.cli bench --suite runtime --json benchmarks/runtime.json --markdown benchmarks/runtime.md
	$(PY) -m reloc_ros.cli bench --suite full --json benchmarks/results.json --markdown benchmarks/results.md
	$(PY) -m reloc_ros.cli bench --suite camnet --json benchmarks/camnet.json --markdown benchmarks/camnet.md
	$(PY) -m reloc_ros.cli bench --suite pmnet --json benchmarks/pmnet.json --markdown benchmarks/pmnet.md
	$(PY) -m reloc_ros.cli bench --suite verify --json benchmarks/verify.json --markdown benchmarks/verify.md
	$(PY) -m reloc_ros.cli bench --suite heldout --json benchmarks/heldout.json --markdown benchmarks/heldout.md
