# Copyright 2026 reloc_ros contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Every benchmark suite of ``reloc-ros bench --suite NAME``, one module each; :func:`run_suite` runs one.

Each suite module has ``run_<name>_benchmark(quick=..., ...) -> dict`` (JSON
figures) and, except ``data``, ``markdown_table(results) -> str``.
"""

from __future__ import annotations

import importlib
from typing import Any

SUITES = ("data", "apr", "runtime", "full", "camnet", "pmnet", "verify", "heldout")
"""Suite names, each the module ``reloc_ros.bench.<name>``."""


def run_suite(name: str, quick: bool = False, progress: bool = True,
              frames: int = 300) -> tuple[dict[str, Any], str | None]:
    """Run one suite; return its results and its markdown tables (None for ``data``, which has none).

    ``frames`` is the data suite's frames per measurement; ``progress`` shows the others' progress bars.
    """
    if name not in SUITES:
        raise ValueError(f"unknown benchmark suite {name!r}; valid: {', '.join(SUITES)}")
    module = importlib.import_module(f"{__name__}.{name}")
    run = getattr(module, f"run_{name}_benchmark")
    if name == "data":
        return run(frames=frames, quick=quick), None
    results = run(quick=quick) if name == "runtime" else run(quick=quick, progress=progress)
    return results, module.markdown_table(results)
