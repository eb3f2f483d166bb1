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

"""The model file format: what is and is not a reloc_ros model, versions, reading without torch."""

import subprocess
import sys
import zipfile

import pytest
import torch

from conftest import TinyAPR, resave
from reloc_ros import modelfile as MF
from reloc_ros.errors import RelocError

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")


def _truncated(tmp_path, model_file):
    data = model_file.read_bytes()
    return (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])


def _random_zip(tmp_path, model_file):
    with zipfile.ZipFile(tmp_path / "random.zip", "w") as zf:
        zf.writestr("readme.txt", "not a model")
        zf.writestr("reloc_ros/metadata.json", "{}")  # right name, wrong place: still not a model


def _state_dict(tmp_path, model_file):
    torch.save(TinyAPR().state_dict(), tmp_path / "state_dict.pt")


def _torchscript_without_metadata(tmp_path, model_file):
    torch.jit.save(torch.jit.script(TinyAPR().eval()), str(tmp_path / "plain_ts.pt"))


def _text(tmp_path, model_file):
    (tmp_path / "model.yaml").write_text("model: posenet\n")


def _wrong_format(tmp_path, model_file):
    resave(model_file, tmp_path / "other.pt", lambda m: m.update(format="someone.else"))


@pytest.mark.parametrize("make", [_truncated, _random_zip, _state_dict, _torchscript_without_metadata, _text,
                                  _wrong_format])
def test_files_that_are_not_reloc_ros_models_are_refused(tmp_path, model_file, make):
    before = set(tmp_path.iterdir())
    make(tmp_path, model_file)
    (path,) = set(tmp_path.iterdir()) - before
    with pytest.raises(RelocError, match=rf"'{path}' is not a reloc_ros model file \(.+\)"):
        MF.load_model(path)


def test_missing_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        MF.load_model(tmp_path / "nope.pt")


def test_a_newer_format_version_is_refused_naming_both_versions(tmp_path, model_file):
    path = resave(model_file, tmp_path / "future.pt", lambda m: m.update(format_version=2, reloc_ros_version="9.0"))
    with pytest.raises(RelocError, match=r"format_version 2 .*reloc_ros 9\.0.*<= 1: upgrade"):
        MF.load_model(path)


def test_missing_metadata_keys_are_named(tmp_path, model_file):
    def drop(meta):
        del meta["frames"], meta["metrics"]

    path = resave(model_file, tmp_path / "old.pt", drop)
    with pytest.raises(RelocError, match="lacks metadata keys: frames, metrics"):
        MF.load_model(path)


def test_reading_metadata_needs_no_torch(model_file):
    """The runtime reads model files (and runs ONNX ones) on robots that may have no torch."""
    code = ("import sys\n"
            "class _NoTorch:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ImportError('torch must not be needed to read a model file')\n"
            "sys.meta_path.insert(0, _NoTorch())\n"
            "from reloc_ros import modelfile\n"
            "meta = modelfile.read_model_metadata(sys.argv[1])\n"
            "print(meta['model'], meta['format_version'])\n")
    out = subprocess.run([sys.executable, "-c", code, str(model_file)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["tiny-apr", str(MF.FORMAT_VERSION)]


def test_metadata_json_refuses_what_json_cannot_hold_and_names_it():
    assert MF.metadata_json({"scale": torch.tensor([1.5, 2.0])}) == '{\n  "scale": [\n    1.5,\n    2.0\n  ]\n}'
    with pytest.raises(ValueError, match="must be JSON-serialisable: .*object"):
        MF.metadata_json({"bad": object()})
