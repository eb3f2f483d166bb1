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

"""PMNet diagnostics: the PoseMap PCA colouring and the image / PoseMap / rendering grids."""

import numpy as np
import pytest

from reloc_ros import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _two_direction_posemaps(n=2, h=5, w=7, k=4):
    """Build PoseMaps whose features vary along ``d1`` with x and, less, along ``d2`` with y.

    ``d1`` and ``d2`` are orthogonal unit vectors whose largest-magnitude
    entries are positive, so the sign rule keeps them as they are.
    """
    d1 = np.zeros(k)
    d1[:3] = [0.2, 1.0, -0.5]
    d1 /= np.linalg.norm(d1)
    d2 = np.zeros(k)
    d2[:3] = [1.0, 0.0, 0.4]
    d2 /= np.linalg.norm(d2)
    assert abs(d1 @ d2) < 1e-12
    xs = np.linspace(-1.0, 2.0, w)
    ys = np.linspace(0.0, 1.0, h)
    offset = np.arange(k, dtype=np.float64) * 3.0
    maps = (offset + xs[None, :, None] * d1 + 0.3 * ys[:, None, None] * d2)
    return np.broadcast_to(maps, (n, h, w, k)).copy()


def _capture_figure(monkeypatch):
    """Replace the PNG writer by one that keeps the figure; return the list it appends to."""
    figs = []
    monkeypatch.setattr(plots, "_save_png", lambda fig, path, dpi=110: figs.append(fig))
    return figs


def _png_width(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    return int.from_bytes(data[16:20], "big")


def test_pca_rgb_shape_dtype_range_and_known_directions():
    maps = _two_direction_posemaps(n=2, h=5, w=7, k=4)
    rgb = plots.posemap_pca_rgb(maps)
    assert rgb.shape == (2, 5, 7, 3) and rgb.dtype == np.float32
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    # First channel: the x direction, strictly increasing along x, constant along y, stretched to 0..1.
    r = rgb[..., 0]
    assert np.all(np.diff(r, axis=2) > 0)
    assert np.allclose(r, r[:, :1, :], atol=1e-6)
    assert r.min() == pytest.approx(0.0, abs=1e-6) and r.max() == pytest.approx(1.0, abs=1e-6)
    # Second channel: the weaker y direction, strictly increasing along y.
    assert np.all(np.diff(rgb[..., 1], axis=1) > 0)
    assert np.allclose(rgb[..., 1], rgb[:, :, :1, 1], atol=1e-6)
    # Rank 2 features: no third component, flat grey.
    assert np.all(rgb[..., 2] == np.float32(0.5))


def test_pca_rgb_sign_rule_is_deterministic_and_negation_inverts():
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(3, 4, 6, 16))
    a = plots.posemap_pca_rgb(maps)
    b = plots.posemap_pca_rgb(maps.copy())
    np.testing.assert_array_equal(a, b)
    # The axes keep their sign (largest entry positive), so negated features project
    # negated and every stretched channel c becomes 1 - c.
    neg = plots.posemap_pca_rgb(-maps)
    np.testing.assert_allclose(neg, 1.0 - a, atol=1e-5)
    # With a known direction: the same features along -d1 run the first channel backwards.
    known = _two_direction_posemaps()
    flipped = 2 * known.mean(axis=(0, 1, 2)) - known
    assert np.all(np.diff(plots.posemap_pca_rgb(flipped)[..., 0], axis=2) < 0)


def test_pca_rgb_fits_one_pca_over_all_posemaps():
    """A frame with a small feature range must not be stretched to full contrast on its own."""
    w = 9
    t = np.linspace(0.0, 1.0, w)
    maps = np.zeros((2, 1, w, 1))
    maps[0, 0, :, 0] = t
    maps[1, 0, :, 0] = 3.0 * t
    r = plots.posemap_pca_rgb(maps)[..., 0]
    np.testing.assert_allclose(r[0, 0], t / 3.0, atol=1e-6)
    np.testing.assert_allclose(r[1, 0], t, atol=1e-6)


def test_pca_rgb_single_feature_gives_grey_channels():
    maps = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4, 1)
    rgb = plots.posemap_pca_rgb(maps)
    expected = (maps[..., 0] - maps.min()) / (maps.max() - maps.min())
    np.testing.assert_allclose(rgb[..., 0], expected, atol=1e-6)
    assert np.all(rgb[..., 1:] == np.float32(0.5))


def test_pca_rgb_constant_input_is_grey():
    rgb = plots.posemap_pca_rgb(np.full((1, 2, 3, 5), 7.0, dtype=np.float32))
    assert np.all(rgb == np.float32(0.5))


@pytest.mark.parametrize("shape", [(4, 4, 2), (0, 4, 4, 2), (1, 0, 4, 2), (1, 4, 0, 2), (1, 4, 4, 0),
                                   (1, 2, 3, 4, 5)])
def test_pca_rgb_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
        plots.posemap_pca_rgb(np.zeros(shape))


def test_pca_rgb_rejects_non_finite_and_counts_them():
    maps = np.zeros((1, 3, 3, 2))
    maps[0, 0, 0, 0] = np.nan
    maps[0, 1, 2, 1] = np.inf
    maps[0, 2, 2, 0] = -np.inf
    with pytest.raises(ValueError, match=r"\b3 non-finite"):
        plots.posemap_pca_rgb(maps)


def _images(n, h=32, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_plot_posemap_pca_writes_png_and_wider_for_more_frames(tmp_path):
    one, four = tmp_path / "one.png", tmp_path / "four.png"
    plots.plot_posemap_pca(one, _images(1), _two_direction_posemaps(n=1, h=2, w=3), title="PMNet")
    plots.plot_posemap_pca(four, _images(4), _two_direction_posemaps(n=4, h=2, w=3))
    assert _png_width(four) > 1.5 * _png_width(one)


def test_plot_posemap_pca_layout(monkeypatch):
    figs = _capture_figure(monkeypatch)
    imgs, maps = _images(3, h=32, w=48), _two_direction_posemaps(n=3, h=2, w=3)
    plots.plot_posemap_pca("unused.png", imgs, maps)
    (fig,) = figs
    axes = np.array(fig.axes).reshape(2, 3)
    assert axes[0, 0].get_ylabel() == "image" and axes[1, 0].get_ylabel() == "PoseMap (PCA)"
    for j in range(3):
        top, bottom = axes[0, j].images[0], axes[1, j].images[0]
        np.testing.assert_array_equal(top.get_array(), imgs[j])
        assert bottom.get_array().shape == (2, 3, 3)
        assert bottom.get_interpolation() == "nearest"
        # The low-resolution PoseMap covers exactly the image's pixels.
        np.testing.assert_allclose(bottom.get_extent(), top.get_extent())
        np.testing.assert_allclose(bottom.get_extent(), (-0.5, 47.5, 31.5, -0.5))


def test_plot_posemap_pca_rejects_bad_counts(tmp_path):
    with pytest.raises(ValueError, match="3 images"):
        plots.plot_posemap_pca(tmp_path / "x.png", _images(3), _two_direction_posemaps(n=2))
    with pytest.raises(ValueError, match=r"1 to 8 images.*N = 9"):
        plots.plot_posemap_pca(tmp_path / "x.png", _images(9, h=4, w=4), _two_direction_posemaps(n=9))
    assert not (tmp_path / "x.png").exists()


def test_plot_render_grid_writes_png_with_psnr_titles(tmp_path, monkeypatch):
    real = _images(2)
    rendered = np.random.default_rng(1).uniform(-0.2, 1.2, size=real.shape)  # floats, clipped
    out = tmp_path / "render.png"
    plots.plot_render_grid(out, real, rendered, psnr_n=[23.44, 17.0], title="NeRF-P")
    _png_width(out)
    figs = _capture_figure(monkeypatch)
    plots.plot_render_grid("unused.png", real, rendered, psnr_n=np.array([23.44, 17.0]))
    axes = np.array(figs[0].axes).reshape(2, 2)
    assert [ax.get_title() for ax in axes[1]] == ["23.4 dB", "17.0 dB"]
    assert axes[0, 0].get_ylabel() == "real" and axes[1, 0].get_ylabel() == "rendered (NeRF-P)"
    shown = np.asarray(axes[1, 0].images[0].get_array())
    assert shown.min() >= 0.0 and shown.max() <= 1.0
    # Without PSNRs no panel gets a title; uint8 renderings work too.
    plots.plot_render_grid("unused.png", real, real)
    assert all(ax.get_title() == "" for ax in figs[1].axes)


def test_plot_render_grid_rejects_bad_inputs(tmp_path):
    out = tmp_path / "x.png"
    with pytest.raises(ValueError, match=r"\(2, 32, 48, 3\) and \(2, 16, 24, 3\)"):
        plots.plot_render_grid(out, _images(2), _images(2, h=16, w=24))
    with pytest.raises(ValueError, match="1 PSNRs for 2 images"):
        plots.plot_render_grid(out, _images(2), _images(2), psnr_n=[20.0])
    with pytest.raises(ValueError, match=r"1 to 8 images.*N = 9"):
        plots.plot_render_grid(out, _images(9, h=4, w=4), _images(9, h=4, w=4))
    assert not out.exists()
