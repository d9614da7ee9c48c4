"""bioimage.io packages: what Fiji/deepImageJ users get from `deblur export-bioimageio`, and
deblur loading such a package back with --weights.

The export tests need the `bioimageio` extra (CI installs it); the loading side needs nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from core.bioimageio.package_files import MANIFEST, is_model_package, read_package
from core.cli import main as deblur
from core.models.registry import load_network, resolve_weights
from core.models.weights import WeightsError, load_weights
from resources import SAMPLES

NUCLEI = SAMPLES / "nuclei_blurred.tif"
NUCLEI_ROI = SAMPLES / "nuclei_blurred.roi.json"


def _tile_and_engine_output(model: str) -> tuple[np.ndarray, np.ndarray]:
    """A 192 x 320 tile of the nuclei sample (another size than any traced example) and
    deblur's engine output on it (float32, the model's defaults), in normalised units."""
    from core.engine import restore
    from core.io import read_image
    from core.models.registry import load_model
    from core.normalize import normalize, percentile_params

    plane = read_image(NUCLEI).data.astype(np.float32)
    tile = np.ascontiguousarray(plane[128:128 + 192, 64:64 + 320])
    restorer = load_model(model, device="cpu")
    restorer.amp = False
    return tile, normalize(restore(tile, restorer, None, axes="YX"), percentile_params(tile))


def _run_tile(net, tile: np.ndarray) -> np.ndarray:
    """A package's tile network on `tile`, normalised as the package's preprocessing does."""
    from core.normalize import normalize, percentile_params

    with torch.no_grad():
        return net(torch.from_numpy(normalize(tile, percentile_params(tile)))[None, None])[0, 0].numpy()


def _hand_made_package(path: Path, model: str = "cyclegan") -> Path:
    """A package as export writes it, as far as deblur reads it (rdf + manifest + weights)."""
    weights = resolve_weights(model, None)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("rdf.yaml", "type: model\n")
        zf.write(weights, f"{model}.safetensors")
        zf.write(weights.with_suffix(".json"), f"{model}.json")
        zf.writestr(MANIFEST, json.dumps({"model": model, "weights": f"{model}.safetensors",
                                          "card": f"{model}.json"}))
    return path


def test_a_package_loads_the_same_network_as_its_weights_file(tmp_path):
    pkg = _hand_made_package(tmp_path / "cg.zip")
    a, card_a = load_weights(pkg)
    b, card_b = load_weights(resolve_weights("cyclegan", None))
    assert card_a["model"] == card_b["model"] == "cyclegan"
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_predict_with_a_package_gives_the_pixels_of_its_weights(tmp_path):
    """`deblur predict --weights MODEL.zip` needs no --model: the package says which."""
    pkg = _hand_made_package(tmp_path / "cg.zip")
    common = [str(NUCLEI), "--roi", str(NUCLEI_ROI), "-q", "--tile", "256"]
    assert deblur(["predict", *common, "--weights", str(pkg), "-o", str(tmp_path / "a.tif")]) == 0
    assert deblur(["predict", *common, "--model", "cyclegan", "-o", str(tmp_path / "b.tif")]) == 0
    import tifffile

    assert np.array_equal(tifffile.imread(tmp_path / "a.tif"), tifffile.imread(tmp_path / "b.tif"))


@pytest.mark.parametrize("content, words", [
    (b"not a zip", "not a readable zip"),
    (None, "not a bioimage.io model package"),
    ("foreign", "not of a deblur model"),
])
def test_a_bad_package_is_named_and_refused(tmp_path, capsys, content, words):
    path = tmp_path / "model.zip"
    if content is None:                       # an ImageJ ROI set is a zip too
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("a.roi", b"Iout")
    elif content == "foreign":                # another project's bioimage.io model
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("rdf.yaml", "type: model\n")
    else:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=words):
        load_weights(path)
    out = tmp_path / "out.tif"
    assert deblur(["predict", str(NUCLEI), "--weights", str(path), "-o", str(out), "-q"]) == 2
    assert words in capsys.readouterr().err and not out.exists()


def test_an_imagej_roi_set_is_not_taken_for_a_model(tmp_path):
    path = tmp_path / "RoiSet.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("0001.roi", b"Iout")
    assert not is_model_package(path)
    assert is_model_package(_hand_made_package(tmp_path / "m.zip"))


# ----------------------------------------------------------------------------- export (extra)

@pytest.fixture(scope="module")
def comi_package(tmp_path_factory) -> Path:
    pytest.importorskip("bioimageio.spec")
    pytest.importorskip("onnx")
    out = tmp_path_factory.mktemp("export") / "comi.zip"
    assert deblur(["export-bioimageio", "--model", "comi", "-o", str(out)]) == 0
    return out


@pytest.mark.bioimageio
def test_the_exported_package_passes_bioimageio_test(comi_package):
    """The check every bioimage.io consumer relies on: all weight formats reproduce the test
    output (which our own engine produced) from the test input."""
    pytest.importorskip("bioimageio.core")
    result = subprocess.run([str(Path(sys.executable).parent / "bioimageio"), "test",
                             str(comi_package)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    for fmt in ("torchscript", "onnx", "pytorch_state_dict"):
        assert f"weights.{fmt}" in result.stdout


@pytest.mark.bioimageio
def test_the_package_restores_a_tile_as_deblurs_engine_does(comi_package, tmp_path):
    """Its TorchScript on a tile = deblur's engine on that tile (float32, default views),
    up to float rounding: at most 1e-5 in normalised units."""
    with zipfile.ZipFile(comi_package) as zf:
        zf.extract("weights_torchscript.pt", tmp_path)
        names = set(zf.namelist())
    assert {"rdf.yaml", "README.md", "cover.png", "weights.onnx", MANIFEST} <= names
    scripted = torch.jit.load(str(tmp_path / "weights_torchscript.pt"))
    tile, expected = _tile_and_engine_output("comi")
    assert float(np.abs(_run_tile(scripted, tile) - expected).max()) < 1e-5


@pytest.mark.bioimageio
def test_the_package_carries_its_deblur_weights_and_card(comi_package):
    blob, card, manifest = read_package(comi_package)
    assert card["model"] == "comi" and manifest["views"] == 2
    net, _ = load_network(comi_package, "comi")
    ref, _ = load_network(resolve_weights("comi", None), "comi")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), ref.state_dict().values()))
    with zipfile.ZipFile(comi_package) as zf:
        readme = zf.read("README.md").decode()
    assert "Validation" in readme and "WHOLE tiles" in readme and "Must not be used for" in readme


@pytest.mark.parametrize("args, words", [
    (["--model", "ddpm"], "cannot be exported"),
    (["--model", "richardson-lucy"], "cannot be exported"),
    (["--model", "comi", "--weights", "missing.safetensors"], "does not exist"),
])
def test_what_cannot_be_exported_is_said_and_nothing_is_written(tmp_path, capsys, args, words):
    out = tmp_path / "m.zip"
    assert deblur(["export-bioimageio", *args, "-o", str(out)]) == 2
    assert words in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_package_is_not_replaced_without_overwrite(tmp_path, capsys):
    out = tmp_path / "m.zip"
    out.write_bytes(b"keep")
    assert deblur(["export-bioimageio", "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"keep"


def test_a_cyclegan_package_keeps_brightness_as_deblurs_engine_does(tmp_path):
    """CycleGAN restores with Keep brightness (8 px) by default: the package's tile network
    does the same, traced for one size and run on another, equal to deblur's engine; and it
    exports to ONNX (where the bioimageio extra is installed)."""
    from core.bioimageio.tile_network import TileNetwork
    from core.models.registry import get_entry

    net, card = load_network(resolve_weights("cyclegan", None), "cyclegan")
    brightness = get_entry("cyclegan").params["brightness_px"].default
    assert brightness > 0
    tile_net = TileNetwork(card["architecture"], net.margin, 2, brightness_px=brightness).eval()
    tile_net.net.load_state_dict(net.state_dict())
    assert tile_net.margin >= 3 * brightness
    traced = torch.jit.trace(tile_net, torch.zeros(1, 1, 160, 160))
    tile, expected = _tile_and_engine_output("cyclegan")
    assert float(np.abs(_run_tile(traced, tile) - expected).max()) < 1e-5
    plain = TileNetwork(card["architecture"], net.margin, 2).eval()
    plain.net.load_state_dict(net.state_dict())
    assert float(np.abs(_run_tile(plain, tile) - expected).max()) > 1e-3   # it does matter
    pytest.importorskip("onnx")
    from core.bioimageio.export import _write_weights

    paths = _write_weights(tile_net, torch.zeros(1, 1, 160, 160), tmp_path)
    assert all(p.stat().st_size > 0 for p in paths)
