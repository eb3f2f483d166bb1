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

"""The engine with a feature map in the model file: verified poses, failed ones, and every way to refuse a map."""

import json
import shutil
import zipfile

import numpy as np
import pytest
import torch

from reloc_ros import modelfile as MF
from reloc_ros.data.synth import synthetic_dataset
from reloc_ros.errors import RelocError
from reloc_ros.geometry import rotation_error_deg, translation_error
from reloc_ros.mapping.build import MapConfig, build_map
from reloc_ros.mapping.storage import MAP_ENTRY, embed_map, load_map
from reloc_ros.nets.apr import APRConfig, build_apr
from reloc_ros.runtime import uncertainty as U
from reloc_ros.runtime.engine import Relocalizer
from reloc_ros.runtime.verify import CameraMismatch, Verifier, VerifyConfig, calibrate
from reloc_ros.training import export as E
from reloc_ros.training import onnx_export as OX

SIZE = (160, 120)
SCENE = "textured_room"


def _meta():
    return {"model": "posenet", "preprocessing": "resize",
            "frames": {"map_frame": "map", "camera_frame": "camera_optical_frame"}, "training_data": {},
            "metrics": {}, "uncertainty": {"method": "mc_dropout", "samples": 8}}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Build a mapping run and a query run of a textured room, a map of the first, and an untrained APR far off."""
    d = tmp_path_factory.mktemp("verified")
    mapping = synthetic_dataset("train", 160, 0, SIZE, scene=SCENE)
    query = synthetic_dataset("test", 24, 0, SIZE, scene=SCENE)
    fmap = build_map(mapping.images, mapping.poses_n44, mapping.intrinsics, config=MapConfig(),
                     stamps_ns=mapping.stamps_ns)
    torch.manual_seed(0)
    # An untrained network around a mean 30 m away: every learned proposal is wrong.
    model = E.export_torchscript(build_apr(APRConfig()), d / "far.pt", _meta(), pos_mean=(30.0, 30.0, 0.0),
                                 pos_scale=1.0, input_size=(64, 48))
    plain = d / "plain.pt"
    shutil.copy(model, plain)
    cal = U.Calibration(scale_t=2.0, floor_t=0.005, scale_r=2.0, floor_r=0.002, frames=10).to_dict()
    embed_map(model, fmap, cal, {"map_frame": "map"})
    return {"dir": d, "mapping": mapping, "query": query, "map": fmap, "model": model, "plain": plain}


def _run(reloc, query, idx=None):
    out = []
    for i in range(len(query)) if idx is None else idx:
        out.append(reloc.relocalize(query.images[i], int(query.stamps_ns[i]), intrinsics=query.intrinsics))
    return out


def test_wrong_proposals_end_as_failed_never_as_a_confident_wrong_pose(world):
    reloc = Relocalizer(world["model"], device="cpu", verify="on",
                        verify_config=VerifyConfig(retrieval_fallback=False))
    assert reloc.verifying and "sift feature map" in reloc.describe()
    ests = _run(reloc, world["query"])
    assert all(e.status == "failed" for e in ests), [e.status_detail for e in ests]
    assert all(not e.publishable and e.status_detail for e in ests)


def test_retrieval_fallback_verifies_accurately_where_the_model_is_far_off(world):
    reloc = Relocalizer(world["model"], device="cpu")  # verify auto, default config: fallback on
    ests = _run(reloc, world["query"])
    q = world["query"]
    ok = np.array([e.status == "verified" for e in ests])
    assert ok.mean() >= 0.75  # a 160x120 single-lap map: some query views are too far from every key frame
    pred = np.stack([e.T_map_cam for e in ests])[ok]
    t, r = translation_error(pred, q.poses_n44[ok]), rotation_error_deg(pred, q.poses_n44[ok])
    assert np.median(t) < 0.05 and np.median(r) < 1.0 and t.max() < 0.25
    e = ests[int(np.argmax(ok))]
    assert e.learned_T_map_cam is not None and np.linalg.norm(e.learned_T_map_cam[:3, 3] - e.T_map_cam[:3, 3]) > 10
    assert e.inliers >= 30 and "inliers" in e.status_detail and "retrieval" in e.status_detail
    # The calibrated covariance of the refined pose, not the model's.
    assert np.sqrt(e.covariance[0, 0]) < 0.1 and e.confidence > 0.9
    assert e.timings_ms["verification"] > 0 and e.timings_ms["total"] >= e.timings_ms["verification"]
    for stage in ("features", "matching", "ransac", "refinement"):
        assert stage in e.timings_ms


def test_images_of_another_scene_fail_even_with_the_fallback(world):
    other = synthetic_dataset("test", 12, 5, SIZE, scene=SCENE)  # seed 5: other furniture and textures
    reloc = Relocalizer(world["model"], device="cpu")
    ests = _run(reloc, other)
    wrong = [e for e in ests if e.status == "verified"
             and translation_error(e.T_map_cam[None], other.poses_n44[ests.index(e)][None])[0] > 0.25]
    assert not wrong
    assert np.mean([e.status == "failed" for e in ests]) >= 0.9


def test_modes_without_a_map(world, caplog):
    with pytest.raises(RelocError, match="carries no feature map.*reloc-ros map"):
        Relocalizer(world["plain"], device="cpu", verify="on")
    reloc = Relocalizer(world["plain"], device="cpu")
    assert not reloc.verifying and "unverified" in caplog.text
    e = reloc.relocalize(world["query"].images[0], 1)
    assert e.status == "unverified" and e.publishable and e.learned_T_map_cam is None
    off = Relocalizer(world["model"], device="cpu", verify="off")
    assert not off.verifying and off.relocalize(world["query"].images[0], 1).status == "unverified"
    with pytest.raises(ValueError, match="verify mode 'maybe'"):
        Relocalizer(world["plain"], device="cpu", verify="maybe")


def test_a_query_camera_that_is_not_the_maps_is_refused(world):
    reloc = Relocalizer(world["model"], device="cpu")
    img = world["query"].images[0]
    from reloc_ros.data.types import Intrinsics

    other = Intrinsics(fx=300.0, fy=300.0, cx=79.5, cy=59.5, width=160, height=120)
    with pytest.raises(CameraMismatch, match="not the map's camera"):
        reloc.relocalize(img, 1, intrinsics=other)
    # The same camera at twice the resolution is an exact rescale: accepted.
    big = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)
    est = reloc.relocalize(big, 2, intrinsics=world["query"].intrinsics.scaled(320, 240))
    assert est.status in ("verified", "failed")


def _rewrite(src, dst, transform):
    """Copy a zip archive, passing each (name, bytes) through ``transform``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, transform(info.filename, zin.read(info.filename)))


def test_maps_that_do_not_belong_are_refused(world):
    d = world["dir"]
    meta = MF.read_metadata(world["model"])
    fmap_data = load_map(world["model"], meta)
    assert fmap_data is not None and fmap_data[1]["scale_t"] == 2.0

    # The map entry of another build (one key frame less) in this model: the hash check refuses it.
    other = build_map(world["mapping"].images[:80], world["mapping"].poses_n44[:80], world["mapping"].intrinsics)
    swapped = d / "swapped.pt"
    _rewrite(world["model"], swapped,
             lambda n, b: other.to_bytes() if n.endswith("extra/" + MAP_ENTRY) else b)
    with pytest.raises(RelocError, match="not the one its metadata names"):
        Relocalizer(swapped, device="cpu")

    # A damaged map whose hash was also forged: the map's own checks refuse it, nothing is unpickled.
    def forge(n, b):
        if n.endswith("extra/" + MAP_ENTRY):
            return b"PK\x03\x04 not really a map"
        if n.endswith("extra/reloc_ros/metadata.json"):
            m = json.loads(b)
            from reloc_ros.mapping.featuremap import digest

            m["feature_map"]["sha256"] = digest(b"PK\x03\x04 not really a map")
            return json.dumps(m).encode()
        return b
    forged = d / "forged.pt"
    _rewrite(world["model"], forged, forge)
    with pytest.raises(RelocError):
        Relocalizer(forged, device="cpu")

    # Metadata that names a map the archive does not hold.
    missing = d / "missing.pt"
    _rewrite(world["plain"], missing, lambda n, b: json.dumps({**json.loads(b), "feature_map": meta["feature_map"]})
             .encode() if n.endswith("extra/reloc_ros/metadata.json") else b)
    with pytest.raises(RelocError, match="holds none"):
        Relocalizer(missing, device="cpu")


def test_calibration_on_held_out_frames_covers_the_errors(world):
    """Calibrated on held-out mapping frames, the verified covariance covers query errors (not over-confident)."""
    m = world["mapping"]
    held = np.zeros(len(m), bool)
    for start in range(10, 150, 25):  # six short blocks: new viewpoints, each still near mapped ones
        held[start:start + 5] = True
    cal_map = build_map(m.images[~held], m.poses_n44[~held], m.intrinsics)
    cal = calibrate(Verifier(cal_map), m.images[held], m.poses_n44[held], m.intrinsics)
    assert cal.frames >= 20
    v = Verifier(world["map"], calibration=cal)
    q = world["query"]
    errs, covs = [], []
    for i in range(len(q)):
        r = v.verify(q.images[i], q.poses_n44[i][None], q.intrinsics)
        if r.status == "verified":
            errs.append(U.error_vectors(r.T_map_cam[None], q.poses_n44[i][None])[0])
            covs.append(cal.apply(r.raw_covariance))
    cov = U.coverage(np.stack(errs), np.stack(covs))
    for group in ("translation", "rotation"):  # 95 % expected within 2 sigma; neither over- nor under-confident
        assert 0.8 <= cov[group]["within_2sigma"] and cov[group]["within_1sigma"] <= 0.95, cov


def test_an_onnx_model_reads_the_map_of_the_torchscript_file_beside_it(world, caplog):
    pytest.importorskip("onnxruntime")
    d = world["dir"]
    onnx = OX.export_onnx(world["plain"], d / "far.onnx")  # beside far.pt, the same model with its map
    reloc = Relocalizer(onnx, device="cpu")
    assert reloc.backend_name == "onnx" and reloc.verifying
    ts = Relocalizer(world["model"], device="cpu")
    a, b = _run(reloc, world["query"], range(6)), _run(ts, world["query"], range(6))
    assert [e.status for e in a] == [e.status for e in b] and "verified" in [e.status for e in a]
    for x, y in zip(a, b):
        assert np.allclose(x.T_map_cam, y.T_map_cam, atol=1e-3)
    # Beside another model's TorchScript file: no map is borrowed from it.
    other = d / "other"
    other.mkdir()
    shutil.copy(onnx, other / "far.onnx")
    torch.manual_seed(1)
    E.export_torchscript(build_apr(APRConfig()), other / "far.pt", {**_meta(), "model": "another"},
                         pos_mean=(0.0, 0.0, 0.0), pos_scale=1.0, input_size=(64, 48))
    lone = Relocalizer(other / "far.onnx", device="cpu")
    assert not lone.verifying and "is another model" in lone.verification
    with pytest.raises(RelocError, match="is another model"):
        Relocalizer(other / "far.onnx", device="cpu", verify="on")
