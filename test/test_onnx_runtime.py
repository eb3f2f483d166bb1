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

"""An ONNX model relocalizes on a robot without torch: the ONNX Runtime backend never imports it."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import H, POS_MEAN, POS_SCALE, W
from reloc_ros.nets.apr import APRConfig, build_apr
from reloc_ros.training.export import export_torchscript

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")

WITHOUT_TORCH = """
import json, sys
class _NoTorch:  # torch may be installed here: make any import of it fail, as on a robot without it
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("torch is not installed on this robot")
sys.meta_path.insert(0, _NoTorch())
import numpy as np
from reloc_ros.runtime.engine import Relocalizer
reloc = Relocalizer(sys.argv[1], device="cpu", verify="off", warmup=1)
est = reloc.relocalize(np.load(sys.argv[2]), stamp_ns=42)
print(json.dumps({"backend": reloc.backend_name, "status": est.status, "stamp_ns": est.stamp_ns,
                  "t": est.T_map_cam[:3, 3].tolist(), "cov_diag": np.diag(est.covariance).tolist(),
                  "torch_imported": "torch" in sys.modules}))
"""


def test_onnx_model_relocalizes_with_torch_blocked(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from reloc_ros.runtime.engine import Relocalizer
    from reloc_ros.training.onnx_export import export_onnx

    torch.manual_seed(0)
    meta = {"model": "posenet", "preprocessing": "resize", "training_data": {}, "metrics": {},
            "frames": {"map_frame": "map", "camera_frame": "cam"}}
    pt = export_torchscript(build_apr(APRConfig(head="fc")), tmp_path / "apr.pt", meta, POS_MEAN, POS_SCALE, (W, H))
    onnx_path = export_onnx(pt, tmp_path / "apr.onnx")
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    np.save(tmp_path / "image.npy", image)
    out = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, str(onnx_path), str(tmp_path / "image.npy")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["backend"] == "onnx" and not got["torch_imported"]
    assert got["status"] == "unverified" and got["stamp_ns"] == 42
    assert all(v > 0 for v in got["cov_diag"])
    # Same answer as the TorchScript backend on the same image.
    ref = Relocalizer(pt, device="cpu", verify="off", warmup=1).relocalize(image, stamp_ns=42)
    np.testing.assert_allclose(got["t"], ref.T_map_cam[:3, 3], atol=1e-4)
