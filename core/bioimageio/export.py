"""Write a deblur model as a bioimage.io model package (a zip that Fiji/deepImageJ, ilastik,
BiaPy, QuPath and bioimageio.core run).

What goes in: ``rdf.yaml`` (the current model format of ``bioimageio.spec``), TorchScript and
ONNX weights of `TileNetwork` (the engine's tile function: context margin, views averaged), a
``pytorch_state_dict`` entry that rebuilds it from this package (``core.bioimageio``), a README
made from the model card, a before/after cover, test tensors restored by our own engine, and the
original deblur weights with their card (so deblur loads the package back exactly). The ROI
blend is the app's, not the model's: a package restores whole tiles.

Needs the ``bioimageio`` extra (bioimageio.spec, onnx); the base install does not carry it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from core import __version__
from core.bioimageio.package_files import MANIFEST
from core.bioimageio.tile_network import TileNetwork
from core.engine import restore
from core.io import atomic_write, read_image
from core.models.plain import plain_lines, technical_lines
from core.models.registry import get_entry, load_network, resolve_weights
from core.normalize import P_HIGH, P_LOW, normalize, percentile_params
from resources import SAMPLES

__all__ = ["ExportError", "export_package", "TEST_TILE", "CITATIONS"]

#: side of the test tile (px): a multiple of every generator's size multiple
TEST_TILE = 256
ONNX_OPSET = 17
INPUT_ID, OUTPUT_ID = "blurred", "restored"
#: the papers behind each exportable model (the rdf's `cite`)
CITATIONS = {
    "comi": [("Zhang C. et al. (2022) Correction of out-of-focus microscopic images by deep "
              "learning. Computational and Structural Biotechnology Journal 20, 1957-1966.",
              "10.1016/j.csbj.2022.04.003", None)],
    "cyclegan": [("Zhu J.-Y., Park T., Isola P., Efros A. A. (2017) Unpaired image-to-image "
                  "translation using cycle-consistent adversarial networks. ICCV 2017.",
                  None, "https://arxiv.org/abs/1703.10593")],
}


class ExportError(ValueError):
    """The model cannot be exported (the message says why, in plain words)."""


def _spec():
    try:
        from bioimageio.spec import save_bioimageio_package  # noqa: F401
        from bioimageio.spec.model import v0_5
    except ImportError:
        raise ExportError("exporting to bioimage.io needs the bioimageio extra: "
                          "pip install -e \".[bioimageio]\" (or pip install 'deblur[bioimageio]')"
                          ) from None
    return v0_5


def _sample_tile() -> np.ndarray:
    """A TEST_TILE square of the nuclei sample inside its blurred region (float32, raw units)."""
    plane = np.asarray(read_image(SAMPLES / "nuclei_blurred.tif").data, dtype=np.float32)
    while plane.ndim > 2:
        plane = plane[0]
    x0 = max(0, (plane.shape[1] - TEST_TILE) // 2)
    return np.ascontiguousarray(plane[:TEST_TILE, x0:x0 + TEST_TILE])


def _engine_output(model: str, weights: Path, tile: np.ndarray, views: int) -> np.ndarray:
    """The tile restored by deblur's engine (float32, no autocast), normalised as the package
    outputs it."""
    from core.models.registry import load_model

    restorer = load_model(model, weights=weights, device="cpu", orientations=views)
    restorer.amp = False          # the package runs float32; autocast is an engine speed-up
    out = restore(tile, restorer, None, axes="YX", device="cpu")
    return normalize(out, percentile_params(tile))


def _cover(tile: np.ndarray, restored: np.ndarray, path: Path) -> None:
    """Before | after, side by side, both scaled by the input's percentiles (2:1 PNG)."""
    from PIL import Image as PILImage

    p = percentile_params(tile)
    before = np.clip(normalize(tile, p), 0, 1)
    after = np.clip(restored, 0, 1)
    both = np.concatenate([before, np.ones((tile.shape[0], 4), np.float32), after], axis=1)
    both = both[:, : 2 * tile.shape[0]]
    PILImage.fromarray((both * 255 + 0.5).astype(np.uint8)).save(path)


def _readme(model: str, card: dict, net: TileNetwork, weights_name: str) -> str:
    entry = get_entry(model)
    lines = [f"# deblur {entry.display_name}: out-of-focus correction for microscopy", "",
             entry.summary, "", "## What it is for", ""]
    lines += [f"- {line}" for line in plain_lines(entry, card)]
    lines += ["", "## What the package does", "",
              f"- Input `{INPUT_ID}`: one grey plane (batch, channel, y, x), any size that is a "
              f"multiple of {net.multiple} px and at least {_min_size(net)} px. Colour images: "
              "restore each channel on its own.",
              f"- Preprocessing: the {P_LOW:g}th percentile of the input maps to 0, the "
              f"{P_HIGH:g}th to 1 (as deblur does for each plane).",
              f"- Output `{OUTPUT_ID}`: the restored plane in those normalised units (0 = the "
              f"input's {P_LOW:g}th percentile, 1 = its {P_HIGH:g}th).",
              f"- Each tile is read with {net.margin} px of context (mirrored at the image edge) "
              f"and the network is averaged over {net.views} mirrored view(s), as deblur does by "
              f"default; when a tool tiles a large image, give it a halo of {net.margin} px."
              + (f" Above {net.brightness_px:g} px the output keeps the input's brightness "
                 "(defocus spreads light, it does not add or remove it), as deblur does for "
                 "this model." if net.brightness_px > 0 else ""),
              *(["- In deblur this network is also told each marked region's blur, measured "
                 "against the image's in-focus areas; a package cannot measure it, so here the "
                 "network judges every tile alone, as deblur runs it on regions whose blur it "
                 "cannot measure (slightly less sharp on strong blur)."]
                if getattr(net.net, "blur_channel", False) else []),
              "- It restores WHOLE tiles. In deblur you mark the blurred regions and only those "
              "are restored and blended back; here every pixel is processed: crop or mask the "
              "blurred area yourself, and keep the original beside the result.",
              "- deblur itself runs bfloat16 on CPUs by default; the package runs float32, so its "
              "values differ from deblur's desktop results by well under the restoration error.",
              "", "## Must not be used for", "",
              "- measuring intensities, sizes or counts inside restored regions: the network "
              "may invent fine detail that is not in the sample;",
              "- images unlike its training data (see below) without checking the result "
              "against the original.",
              "", "## Validation", ""]
    bench = card.get("bench") or {}
    if bench:
        lines.append("Measured by `deblur bench` on held-out test images with a simulated local "
                     "blur (figures from the model card):")
        lines.append("")
    lines += [f"- {line}" for line in technical_lines(card)] or ["- no figures in the card"]
    lines += ["", "## How it was trained", "",
              f"- Command: `{(card.get('training') or {}).get('command', 'not recorded')}`",
              f"- The full model card is attached as `{weights_name.replace('.safetensors', '.json')}`;"
              " deblur loads this package directly: `deblur predict --weights PACKAGE.zip`.",
              "", "## Software", "",
              f"Exported by deblur {__version__} (`deblur export-bioimageio --model {model}`), "
              "open source under the BSD-3-Clause licence.", ""]
    return "\n".join(lines)


def _min_size(net: TileNetwork) -> int:
    """Smallest side the package takes: more than twice the halo, on the size grid."""
    return (2 * net.margin // net.multiple + 1) * net.multiple


def _write_weights(tile_net: TileNetwork, example: torch.Tensor, folder: Path) -> tuple[Path, Path, Path]:
    """TorchScript (traced), ONNX and a plain state dict of the tile network."""
    ts_path, onnx_path, sd_path = folder / "weights_torchscript.pt", folder / "weights.onnx", folder / "weights_state_dict.pt"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")      # trace/export warnings about Python ints: by design
        traced = torch.jit.trace(tile_net, example, check_trace=False)
        traced.save(str(ts_path))
        dynamic = {0: "batch", 2: "y", 3: "x"}
        torch.onnx.export(tile_net, (example,), str(onnx_path), dynamo=False,
                          opset_version=ONNX_OPSET, input_names=[INPUT_ID],
                          output_names=[OUTPUT_ID],
                          dynamic_axes={INPUT_ID: dynamic, OUTPUT_ID: dynamic})
    torch.save(tile_net.state_dict(), sd_path)
    return ts_path, onnx_path, sd_path


def export_package(model: str, out: str | Path, *, weights: str | Path | None = None,
                   views: int | None = None, overwrite: bool = False,
                   progress: Callable[[str], None] | None = None) -> Path:
    """Write the bioimage.io package of `model` (its shipped weights, or `weights`) to `out`.

    Atomic: nothing appears at `out` unless the whole package was written. Raises ExportError
    (a model that is not one network pass, a missing extra, an existing `out`) or WeightsError.
    """
    say = progress or (lambda _msg: None)
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise ExportError(f"{out}: a bioimage.io package is a .zip file")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists (use --overwrite to replace it)")
    try:
        entry = get_entry(model)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    if entry.kind != "gan":
        raise ExportError(f"{entry.display_name} cannot be exported: bioimage.io packages run a "
                          "network once per tile; only COMI and CycleGAN work that way "
                          "(the DDPM samples in many noisy steps, Richardson-Lucy has no network)")
    weights_path = resolve_weights(model, weights)
    net, card = load_network(weights_path, model)
    spec = _spec()
    views = int(views if views is not None else entry.params["orientations"].default)
    margin = int((card.get("inference") or {}).get("margin", net.margin))
    brightness = float(entry.params["brightness_px"].default)
    tile_net = TileNetwork(card["architecture"], margin, views, brightness_px=brightness)
    tile_net.net.load_state_dict(net.state_dict())
    tile_net.eval()

    with tempfile.TemporaryDirectory(prefix="deblur-bioimageio-") as tmp:
        folder = Path(tmp)
        say("restoring the test tile with deblur's engine")
        tile = _sample_tile()
        expected = _engine_output(model, weights_path, tile, views)
        np.save(folder / "test_input.npy", tile[None, None])
        np.save(folder / "test_output.npy", expected[None, None].astype(np.float32))
        import tifffile

        tifffile.imwrite(folder / "sample_input.tif", tile[None, None])
        tifffile.imwrite(folder / "sample_output.tif", expected[None, None].astype(np.float32))
        _cover(tile, expected, folder / "cover.png")
        say("writing TorchScript and ONNX weights")
        example = torch.from_numpy(normalize(tile, percentile_params(tile)))[None, None]
        ts_path, onnx_path, sd_path = _write_weights(tile_net, example, folder)
        deblur_weights = folder / f"{model}.safetensors"
        shutil.copyfile(weights_path, deblur_weights) if weights_path.suffix == ".safetensors" \
            else _extract_weights(weights_path, deblur_weights)
        card_path = folder / f"{model}.json"
        card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        (folder / MANIFEST).write_text(json.dumps(
            {"model": model, "weights": deblur_weights.name, "card": card_path.name,
             "views": views, "margin": tile_net.margin, "brightness_px": tile_net.brightness_px,
             "deblur_version": __version__},
            indent=2) + "\n", encoding="utf-8")
        (folder / "README.md").write_text(_readme(model, card, tile_net, deblur_weights.name),
                                          encoding="utf-8")
        descr = _describe(spec, model, card, tile_net, folder, ts_path, onnx_path, sd_path,
                          [deblur_weights, card_path, folder / MANIFEST])
        say("packing")
        from bioimageio.spec import save_bioimageio_package

        built = save_bioimageio_package(descr, output_path=folder / "package.zip")
        with atomic_write(out) as part:
            shutil.copyfile(built, part)
    return out


def _extract_weights(package: Path, dest: Path) -> None:
    """Re-export from a package: its deblur weights file, as it was."""
    from core.bioimageio.package_files import read_package

    dest.write_bytes(read_package(package)[0])


def _describe(spec, model: str, card: dict, net: TileNetwork, folder: Path, ts_path: Path,
              onnx_path: Path, sd_path: Path, attachments: list[Path]):
    """The rdf as a bioimageio.spec ModelDescr (validated by its constructor)."""
    from bioimageio.spec.common import FileDescr
    from bioimageio.spec.generic.v0_3 import Author, CiteEntry

    entry = get_entry(model)
    step, min_size = net.multiple, _min_size(net)
    space = [spec.SpaceInputAxis(id=spec.AxisId(a), size=spec.ParameterizedSize(min=min_size, step=step))
             for a in ("y", "x")]
    inputs = [spec.InputTensorDescr(
        id=spec.TensorId(INPUT_ID), description="the out-of-focus plane (one grey channel)",
        axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=[spec.Identifier("grey")]), *space],
        test_tensor=FileDescr(source=folder / "test_input.npy"),
        sample_tensor=FileDescr(source=folder / "sample_input.tif"),
        data=spec.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=[spec.ScaleRangeDescr(kwargs=spec.ScaleRangeKwargs(
            axes=(spec.AxisId("y"), spec.AxisId("x")), min_percentile=P_LOW, max_percentile=P_HIGH))])]
    out_space = [spec.SpaceOutputAxisWithHalo(
        id=spec.AxisId(a), size=spec.SizeReference(tensor_id=spec.TensorId(INPUT_ID), axis_id=spec.AxisId(a)),
        halo=net.margin) for a in ("y", "x")]
    outputs = [spec.OutputTensorDescr(
        id=spec.TensorId(OUTPUT_ID), description="the restored plane, in the input's normalised units",
        axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=[spec.Identifier("grey")]), *out_space],
        test_tensor=FileDescr(source=folder / "test_output.npy"),
        sample_tensor=FileDescr(source=folder / "sample_output.tif"),
        data=spec.IntervalOrRatioDataDescr(type="float32"))]
    torch_version = spec.Version(torch.__version__.split("+")[0])
    weights = spec.WeightsDescr(
        torchscript=spec.TorchscriptWeightsDescr(source=ts_path, pytorch_version=torch_version),
        onnx=spec.OnnxWeightsDescr(source=onnx_path, opset_version=ONNX_OPSET,
                                   parent="torchscript"),
        pytorch_state_dict=spec.PytorchStateDictWeightsDescr(
            source=sd_path, pytorch_version=torch_version, parent="torchscript",
            architecture=spec.ArchitectureFromLibraryDescr(
                callable=spec.Identifier("TileNetwork"), import_from="core.bioimageio.tile_network",
                kwargs={"architecture": card["architecture"], "margin": net.margin,
                        "views": net.views, "brightness_px": net.brightness_px}),
            comment="rebuilds the network from deblur's own code (pip install deblur)"))
    cite = [CiteEntry(text=text, doi=doi, url=url) for text, doi, url in CITATIONS.get(model, [])]
    return spec.ModelDescr(
        name=f"deblur {entry.display_name} out-of-focus correction",
        description=entry.summary[:1024],
        authors=[Author(name="deblur developers")],
        cite=cite, license="BSD-3-Clause",
        documentation=FileDescr(source=folder / "README.md"),
        covers=[FileDescr(source=folder / "cover.png")],
        tags=["deblurring", "defocus", "out-of-focus", "restoration", "microscopy", "2d",
              "fluorescence-light-microscopy", "pytorch", "deblur"],
        inputs=inputs, outputs=outputs, weights=weights,
        attachments=[FileDescr(source=p) for p in attachments],
        version="0.1.0",
        config=spec.Config(deblur={"model": model, "manifest": MANIFEST}))

