"""What a biologist reads about a model, from its description and its card: what it is good for,
what it may do wrong, how it did on test images, what it was trained on; the technical record
behind that (for a "Details" view and `deblur models --details`); and warnings when an image is
far from what the model was trained for.

One place for these words: the app's model card and `deblur models` both print them.
"""

from __future__ import annotations


from core.models.spec import ModelEntry

__all__ = ["plain_lines", "technical_lines", "fit_warnings", "data_label", "training_totals",
           "kind_words", "KIND_WORDS"]

KIND_WORDS = {"classical": "Classical method (no training)", "gan": "Neural network (GAN)",
              "diffusion": "Neural network (diffusion model)"}


def data_label(data: str) -> str:
    """Plain words for a card's training data ("synthetic" is our simulated specimens)."""
    return "simulated specimens (no real images)" if data == "synthetic" else str(data)


def training_totals(card: dict) -> tuple[int, float, int]:
    """(steps, wall-time seconds, runs) of a card's training, summed over its ``started_from``
    chain: a fine-tuned model's own run is only the last part of what it took."""
    steps, seconds, runs = 0, 0.0, 0
    train = card.get("training") or {}
    while train:
        steps += int(train.get("steps") or 0)
        seconds += float(train.get("wall_time_s") or 0.0)
        runs += 1
        train = (train.get("started_from") or {}).get("training") or {}
    return steps, seconds, runs


def _test_line(bench: dict) -> str | None:
    if bench.get("gain_db") is None:
        return None
    images = bench.get("per_image") or []
    names = {str(r.get("image")) for r in images}
    real = sum(1 for n in names if not n.startswith("synthetic"))
    what = f"{bench.get('images', len(names) or '?')} test images it never saw"
    if names:
        what += f" ({len(names) - real} simulated specimens, {real} real microscopy images)"
    line = (f"Tested on {what}, each with a simulated blur: {float(bench['gain_db']):+.1f} dB "
            "closer to the sharp original inside the blurred regions")
    if bench.get("gain_over_rl_true_psf_db") is not None:
        line += (f" ({float(bench['gain_over_rl_true_psf_db']):+.1f} dB against classical "
                 "deconvolution told the exact blur)")
    return line + "."


def plain_lines(entry: ModelEntry, card: dict | None = None) -> list[str]:
    """The lead of a model's card, in plain words: good for, may do wrong, tested, trained on."""
    lines = [f"Good for: {entry.good_for}" if entry.good_for else entry.summary]
    if entry.caution:
        lines.append(f"Watch out: {entry.caution}")
    card = card or {}
    test = _test_line(card.get("bench") or {})
    if test:
        lines.append(test)
    data = (card.get("training") or {}).get("data")
    if data:
        lines.append(f"Trained on {data_label(data)}.")
    elif entry.needs_weights and not card:
        lines.append("No trained weights are installed for it.")
    return lines


def technical_lines(card: dict) -> list[str]:
    """The technical record of a card: training length and device, validation scores, the test
    figures in full, the notes on architecture and losses."""
    lines = []
    train = card.get("training") or {}
    val = card.get("validation") or {}
    if train.get("data"):
        lines.append(f"Trained on: {data_label(train['data'])}")
    bits = []
    steps, seconds, runs = training_totals(card)
    if steps:
        bits.append(f"{steps} steps" + (f" in {runs} runs" if runs > 1 else ""))
    if seconds:
        bits.append(f"{seconds / 3600:.1f} h")
    if train.get("device"):
        bits.append(f"on {train['device']}")
    if bits:
        lines.append("Training: " + ", ".join(bits))
    pixel = (train.get("degradation") or {}).get("pixel_um")
    if isinstance(pixel, (list, tuple)) and len(pixel) == 2:
        lines.append(f"Trained for pixel sizes {pixel[0]:g}-{pixel[1]:g} \u00b5m")
    if val.get("psnr") is not None:
        txt = f"Validation: PSNR {float(val['psnr']):.1f} dB"
        if val.get("psnr_blurred") is not None:
            txt = f"Validation: PSNR {float(val['psnr_blurred']):.1f} \u2192 {float(val['psnr']):.1f} dB"
        if val.get("ssim") is not None:
            txt += f", SSIM {float(val['ssim']):.3f}"
        lines.append(txt)
    bench = card.get("bench") or {}
    if bench.get("gain_db") is not None:
        settings = bench.get("settings")            # what the score was measured with
        shown = ""
        if isinstance(settings, dict) and settings:
            shown = "; " + ", ".join(f"{k}={v}" for k, v in settings.items())
        lines.append(f"Held-out test images: {float(bench['gain_db']):+.1f} dB inside the blurred "
                     f"regions ({bench.get('images', '?')} images, PSNR "
                     f"{float(bench.get('psnr_blurred', float('nan'))):.1f} \u2192 "
                     f"{float(bench.get('psnr', float('nan'))):.1f} dB{shown})")
    if card.get("notes"):
        lines.append(str(card["notes"]))
    return lines


def fit_warnings(card: dict, *, pixel_size_um: float | None, rgb: bool) -> list[str]:
    """Plain warnings (not refusals) when an image is far outside what the model was trained
    for: a pixel size several times off its training range, an RGB picture into a model that
    saw mostly fluorescence."""
    out = []
    deg = (card.get("training") or {}).get("degradation") or {}
    pixel = deg.get("pixel_um")
    if pixel_size_um and isinstance(pixel, (list, tuple)) and len(pixel) == 2:
        lo, hi = float(pixel[0]), float(pixel[1])
        if pixel_size_um > 3 * hi or pixel_size_um < lo / 3:
            factor = pixel_size_um / hi if pixel_size_um > hi else lo / pixel_size_um
            out.append(f"This image's pixels ({pixel_size_um:.3g} \u00b5m) are {factor:.0f}x "
                       f"{'larger' if pixel_size_um > hi else 'smaller'} than any the model was "
                       f"trained on ({lo:g}-{hi:g} \u00b5m): objects look bigger or smaller to it "
                       "than it learned; check the result closely.")
    brightfield = deg.get("brightfield_prob")
    if rgb and isinstance(brightfield, (int, float)) and brightfield < 0.5:
        out.append(f"This is a colour (RGB) picture; the model was trained mostly on fluorescence "
                   f"({100 * (1 - brightfield):.0f} % of its examples). Each colour is restored on "
                   "its own: check the colours and fine detail against the original.")
    return out


def kind_words(entry: ModelEntry) -> str:
    """What kind of model it is, in words ("Neural network (GAN)")."""
    return KIND_WORDS.get(entry.kind, entry.kind)
