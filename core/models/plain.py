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


def data_label(data: str, real_images: dict | None = None) -> str:
    """Plain words for a card's training data ("synthetic" is our simulated specimens, with
    `real_images`: mixed with real microscopy planes, blurred by the same simulator)."""
    if data != "synthetic":
        return str(data)
    planes = (real_images or {}).get("planes") or {}
    if not planes:
        return "simulated specimens (no real images)"
    return (f"simulated specimens and real microscopy ({sum(planes.values())} images and image "
            f"areas from {len(planes)} public packages: {', '.join(sorted(planes))}; none of "
            "those it is tested on), with a simulated local blur")


def _training_data(card: dict) -> tuple[str | None, dict | None]:
    """(data, real_images) of a card's training, the real images from any run of its chain."""
    train = card.get("training") or {}
    data, real = train.get("data"), None
    while train and real is None:
        real = train.get("real_images")
        train = (train.get("started_from") or {}).get("training") or {}
    return data, real


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


def _real_test_line(real: dict) -> str | None:
    """The headline: the real-image TEST figures (other labs' images the model never saw)."""
    if real.get("gain_db") is None:
        return None
    n = real.get("images", "?")
    kinds = real.get("what") or "real microscopy"
    line = (f"Tested on {n} real microscopy images from labs whose images it never saw "
            f"({kinds}), each with a simulated local blur: {float(real['gain_db']):+.1f} dB closer "
            "to the sharp original inside the blurred regions on average")
    if real.get("gain_over_rl_true_psf_db") is not None:
        line += (f" ({float(real['gain_over_rl_true_psf_db']):+.1f} dB against classical "
                 "deconvolution told the exact blur)")
    if real.get("harm_rate") is not None and real.get("worst_gain_db") is not None:
        worse = round(float(real["harm_rate"]) * (n if isinstance(n, int) else 0))
        line += (f"; {worse} of {n} came out worse than the input by more than 0.5 dB "
                 f"(worst {float(real['worst_gain_db']):+.1f} dB)")
    return line + "."


def _test_line(bench: dict, second: bool = False) -> str | None:
    """The simulated-specimen figure (`second`: short, after the real-image test line)."""
    if bench.get("gain_db") is None:
        return None
    if second:
        return (f"On {bench.get('images', '?')} simulated specimens it never saw: "
                f"{float(bench['gain_db']):+.1f} dB.")
    images = bench.get("per_image") or []
    names = {str(r.get("image")) for r in images}
    real = sum(1 for n in names if not n.startswith("synthetic"))
    what = f"{bench.get('images', len(names) or '?')} test images it never saw"
    if names:
        what += (f" ({len(names) - real} simulated specimens, {real} real microscopy images)"
                 if real else " (simulated specimens)")
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
    real = _real_test_line(card.get("bench_real") or {})
    for test in (real, _test_line(card.get("bench") or {}, second=real is not None)):
        if test:
            lines.append(test)
    data, real = _training_data(card)
    if data:
        lines.append(f"Trained on {data_label(data, real)}.")
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
        lines.append(f"Trained on: {data_label(*_training_data(card))}")
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
    real = card.get("bench_real") or {}
    if real.get("gain_db") is not None:
        txt = (f"Real-image test ({real.get('split', 'test')} split: "
               f"{', '.join(real.get('sources') or []) or 'real images'}): "
               f"{float(real['gain_db']):+.1f} dB, worst {float(real.get('worst_gain_db', float('nan'))):+.1f} dB, "
               f"harm rate {100 * float(real.get('harm_rate', float('nan'))):.0f} %, SSIM "
               f"{float(real.get('ssim_blurred', float('nan'))):.3f} \u2192 {float(real.get('ssim', float('nan'))):.3f}")
        sharp = real.get("sharp") or {}
        if sharp.get("cases"):
            txt += (f"; on sharp regions marked as blurred, {sharp['passed']} of {sharp['cases']} "
                    f"left alone (worst smoothed PSNR {float(sharp['worst_psnr_smoothed']):.1f} dB, "
                    f"fine detail {float(sharp['worst_detail_ratio']):.2f}x)")
        lines.append(txt + f"; measured by `{real.get('command', 'deblur bench --split test')}`")
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
