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

"""Optional ONNX export: same outputs as TorchScript, same metadata, clear errors without the packages."""

import json
import sys

import numpy as np
import pytest
import torch

from conftest import POS_MEAN, POS_SCALE, H, W, TinyAPR, eager_reference, export, images_b3hw, trainer_metadata
from reloc_ros import modelfile as MF
from reloc_ros.errors import RelocError
from reloc_ros.training import export as E
from reloc_ros.training import onnx_export as OX

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")


def test_onnx_matches_torchscript_and_carries_the_metadata(tmp_path, model_file, tiny_net):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    onnx_path = OX.export_onnx(model_file, tmp_path / "model.onnx")
    module, meta = MF.load_model(model_file)
    model = onnx.load(str(onnx_path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props[MF.METADATA_FILE]) == meta
    for batch in (1, 4):  # dynamic batch
        diff = OX.check_onnx(onnx_path, module, images_b3hw(batch, seed=batch))
        assert 0 <= diff < 1e-4
    # The check can fail: against another model the outputs differ.
    torch.manual_seed(1)
    other, _ = MF.load_model(export(TinyAPR(), tmp_path / "other.pt"))
    with pytest.raises(RelocError, match="differs from TorchScript"):
        OX.check_onnx(onnx_path, other, images_b3hw(2))


def test_onnx_export_from_an_eager_wrapper(tmp_path, tiny_net):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    wrapper = E.ExportedPoseModel(tiny_net, POS_MEAN, POS_SCALE, (W, H))
    meta = E.build_metadata(trainer_metadata(), wrapper)
    onnx_path = OX.export_onnx(wrapper, tmp_path / "model.onnx", meta)
    import onnxruntime as ort

    images = images_b3hw(3)
    t_onnx, q_onnx = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
        None, {"images": images.numpy()})
    t_ref, q_ref = eager_reference(tiny_net, images)
    np.testing.assert_allclose(t_onnx, t_ref, atol=1e-4)
    np.testing.assert_allclose(q_onnx, q_ref, atol=1e-5)
    with pytest.raises(ValueError, match="metadata is required"):
        OX.export_onnx(wrapper, tmp_path / "again.onnx")


def test_onnx_without_the_packages_says_how_to_install_them(tmp_path, model_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now fails as if not installed
    with pytest.raises(RelocError, match="pip install onnx onnxruntime"):
        OX.export_onnx(model_file, tmp_path / "model.onnx")
    with pytest.raises(RelocError, match="pip install onnx onnxruntime"):
        OX.check_onnx(tmp_path / "model.onnx", torch.jit.load(str(model_file)), images_b3hw(1))
    assert not (tmp_path / "model.onnx").exists()


def test_onnx_export_of_an_mc_model_takes_the_masks_as_input(tmp_path, apr_file):
    ort = pytest.importorskip("onnxruntime")
    out = OX.export_onnx(apr_file, tmp_path / "apr.onnx")  # verified against TorchScript, samples included
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images", "keep"]
    assert [o.name for o in session.get_outputs()] == MF.ONNX_MC_OUTPUTS
    assert MF.read_model_metadata(out)["mc_dropout"] == MF.read_model_metadata(apr_file)["mc_dropout"]
