"""Conformal SHREC'11 by Möbius mode and severity: distinct cached builds, per-view transforms and k
in the files and the manifest, the CLI flags (niso data build/show cshrec11 --mobius --severity --by-k)."""

from __future__ import annotations

import numpy as np
import pytest

from niso_geom.cli import main
from niso_geom.data import cshrec11 as cs
from niso_geom.data.cshrec11_views import view_k_matrix, views_by_k
from niso_geom.geometry.mobius import mobius_max_scale

# one mesh of each of two fast classes, 2 views, a coarse grid
SMALL = {"res": (8, 16), "transforms": 2, "seed": 1, "classes": "laptop,bird1", "_max_per_class": 1,
         "progress": False}


@pytest.fixture(scope="module")
def two_severities(tmp_path_factory):
    root = tmp_path_factory.mktemp("cshrec11-sev")
    return root, cs.build_cshrec11(root, **SMALL, severity=1.2), cs.build_cshrec11(root, **SMALL, severity=2.0)


def test_two_severities_are_two_distinct_cached_datasets(two_severities):
    root, a, b = two_severities
    assert a != b and "paper1.2" in a.name and "paper2.0" in b.name
    ma, mb = cs.read_manifest(a), cs.read_manifest(b)
    assert (ma["params"]["mobius"], ma["params"]["severity"]) == ("paper", 1.2)
    assert (mb["params"]["mobius"], mb["params"]["severity"]) == ("paper", 2.0)
    assert len(mb["last_build"]["computed"]) == 2 and not mb["last_build"]["reused"]  # nothing taken from a
    for name in ma["meshes"]:
        sa, sb = (np.load(f / "meshes" / f"{name}.npy") for f in (a, b))
        np.testing.assert_array_equal(sa[0], sb[0])  # the same map ...
        assert not np.array_equal(sa[1:], sb[1:])  # ... other views
    # the same parameters again reuse everything; another mode is yet another folder
    again = cs.build_cshrec11(root, **SMALL, severity=1.2)
    assert again == a and len(cs.read_manifest(a)["last_build"]["reused"]) == 2
    boost = cs.dataset_folder(root, (8, 16), 2, 1, cs.resolve_source(None, None)[1], "boost", 0.2)
    assert boost.name not in {a.name, b.name} and "boost0.2" in boost.name
    rot = cs.dataset_folder(root, (8, 16), 2, 1, "0" * 64, "rotation")
    assert "rotation0.0" in rot.name
    with pytest.raises(ValueError, match="boost needs --severity"):
        cs.build_cshrec11(root, **SMALL, mobius="boost", severity=1.2)


def test_manifest_and_files_record_mode_severity_and_per_view_k(two_severities):
    _, a, _ = two_severities
    m = cs.read_manifest(a)
    names = list(m["meshes"])
    K = view_k_matrix(a, names)
    assert K.shape == (2, 3) and np.all(K[:, 0] == 1.0) and np.all(K[:, 1:] > 1.0)
    for i, name in enumerate(names):
        with np.load(a / "meshes" / f"{name}.npz") as z:
            mats, view_k = z["mobius"], z["view_k"]
        assert mats.shape == (2, 2, 2)
        np.testing.assert_allclose(np.linalg.det(mats), 1.0, atol=1e-10)
        np.testing.assert_allclose(view_k, K[i])
        np.testing.assert_allclose(view_k[1:], mobius_max_scale(mats), rtol=1e-12)
    summary = m["view_k"]
    assert summary["views"] == 4 and np.isclose(summary["max"], K[:, 1:].max())
    assert np.isclose(summary["quantiles"]["0.5"], np.median(K[:, 1:]))
    ordered = views_by_k(a)
    assert [r["k"] for r in ordered] == sorted(K[:, 1:].ravel(), reverse=True)


def test_loader_opens_the_build_of_its_mode_and_severity(two_severities):
    root, a, b = two_severities
    kw = {k: v for k, v in SMALL.items() if k != "progress"}
    assert cs.load_cshrec11(root, build=False, severity=2.0, **kw).folder == b
    assert cs.load_cshrec11(root, build=False, **kw).folder == a  # the default: paper, 1.2
    with pytest.raises(cs.DataError, match="--mobius rotation --severity 0.0"):
        cs.load_cshrec11(root, build=False, mobius="rotation", **kw)


def test_cli_show_by_k_and_bad_severity(two_severities, tmp_path, capsys):
    root, a, _ = two_severities
    out = tmp_path / "by_k.png"
    args = ["data", "show", "cshrec11", "--res", "8", "--transforms", "2", "--seed", "1", "--cache-dir", str(root)]
    assert main([*args, "--count", "2", "--by-k", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.stat().st_size > 3000 and "most expanded first" in text
    top = views_by_k(a)[0]
    assert f"{top['k']:.4g}" in text.split("most expanded first")[1].splitlines()[2]  # the largest k first
    assert main([*args, "--mobius", "paper", "--severity", "0.5", "--out", str(out)]) == 2
    assert "paper needs --severity > 0.9" in capsys.readouterr().err
    assert main(["data", "build", "cshrec11", "--mobius", "rotation", "--severity", "0.3", "--no-progress",
                 "--cache-dir", str(tmp_path)]) == 2
    assert "rotation has no severity" in capsys.readouterr().err
