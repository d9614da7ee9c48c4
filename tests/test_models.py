"""Networks of core.models: shapes for any image size, locality (tiling), losses, DDPM maths,
and the export -> load -> predict round trip of every learned model through the engine.

Tiny configurations only: the whole file runs in a few seconds on a 2-core CPU.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from core.models import losses
from core.models.comi import COMI
from core.models.cyclegan import CycleGAN
from core.models.ddpm import ConditionalDDPM, ddim_timesteps
from core.models.generators import make_generator
from core.models.layers import LayerNorm2d
from core.models.patchgan import PatchDiscriminator
from core.models.registry import make_card
from core.models.resnet_generator import ResnetGenerator, receptive_radius
from core.models.unet import UNet
from core.models.unet_generator import UNetGenerator
from core.models.weights import save_weights
from training.ema import EMA
from training.image_pool import ImagePool
from training.schedules import lr_lambda
from training.steps.ddpm import diffusion_objective


def ddpm_loss(model, sharp, blurred, **kwargs):
    """The DDPM's training loss (training/steps/ddpm.py), as a scalar."""
    return diffusion_objective(model, sharp, blurred, **kwargs)[0]

TINY_GEN = dict(ngf=4, n_down=2, n_blocks=1)
# both generator kinds COMI and CycleGAN can use (make_generator kwargs), tiny
GENERATORS = {"resnet": dict(kind="resnet", **TINY_GEN), "unet": dict(kind="unet", ngf=4, n_down=2)}
TINY_DISC = dict(ndf=4, n_layers=3)
TINY_DDPM = dict(dim=8, dim_mults=(1, 2), num_res_blocks=1, timesteps=100)
ODD_SHAPES = [(2, 1, 37, 53), (1, 1, 65, 129), (1, 1, 5, 3)]



@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("shape", ODD_SHAPES)
@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_generator_keeps_any_shape(shape, residual, kind):
    net = make_generator(**GENERATORS[kind], residual=residual).eval()
    with torch.no_grad():
        y = net(torch.rand(shape))
    assert y.shape == shape and y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.parametrize("shape", ODD_SHAPES)
def test_unet_and_ddpm_keep_any_shape(shape):
    unet = UNet(in_channels=2, out_channels=1, dim=8, dim_mults=(1, 2, 4)).eval()
    x = torch.rand(shape[0], 2, *shape[2:])
    with torch.no_grad():
        assert unet(x, torch.full((shape[0],), 7)).shape == shape
        ddpm = ConditionalDDPM(**TINY_DDPM).eval()
        assert ddpm.sample(torch.rand(shape), steps=2).shape == shape


def test_patchgan_output_shape_and_70px_receptive_field():
    d = PatchDiscriminator(**TINY_DISC)
    assert d(torch.rand(2, 1, 256, 256)).shape == (2, 1, 30, 30)
    score, feats = d(torch.rand(1, 1, 37, 53), features=True)
    assert score.shape == (1, 1, 37 // 8 - 2, 53 // 8 - 2) and len(feats) == 4
    # the receptive field of one output score is 70 x 70 input pixels
    d = PatchDiscriminator(ndf=2, n_layers=3, norm="none")
    x = torch.rand(1, 1, 160, 160, requires_grad=True)
    out = d(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    assert int(rows.max() - rows.min() + 1) == 70


def test_bundles_hold_four_networks():
    for bundle in (COMI(generator=TINY_GEN, discriminator=TINY_DISC),
                   CycleGAN(generator=TINY_GEN, discriminator=TINY_DISC)):
        assert isinstance(bundle.g_deblur, ResnetGenerator) and isinstance(bundle.d_blur, PatchDiscriminator)
        assert len(bundle.generators()) == 2 * len(list(bundle.g_deblur.parameters()))
    assert COMI(generator={**TINY_GEN, "residual": False}).g_deblur.residual   # COMI is residual
    # the shipped presets use the U-Net generator
    assert isinstance(COMI().g_deblur, UNetGenerator) and isinstance(CycleGAN().g_blur, UNetGenerator)
    with pytest.raises(ValueError, match="unknown generator kind"):
        make_generator(kind="transformer")


# ----------------------------------------------------------------------------- locality (tiling)

def test_layernorm2d_is_per_pixel():
    norm = LayerNorm2d(6)
    x = torch.randn(2, 6, 9, 11)
    y = norm(x)
    assert torch.allclose(y.mean(1), torch.zeros(2, 9, 11), atol=1e-5)
    assert torch.allclose(y[:, :, 3:5, 2:7], norm(x[:, :, 3:5, 2:7]))          # crop commutes


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_generator_output_depends_only_on_its_receptive_field_and_not_on_the_batch(kind):
    net = make_generator(**GENERATORS[kind]).eval()
    r = net.receptive_radius
    x = torch.rand(2, 1, 96, 96)
    with torch.no_grad():
        y = net(x)
        assert torch.allclose(net(x[:1]), y[:1], atol=1e-6)                    # batch-independent
        x2 = x.clone()
        x2[..., :, 48 + r + 4:] = torch.rand_like(x2[..., :, 48 + r + 4:])   # far away: change it
        y2 = net(x2)
        x3 = x.clone()
        x3[..., :, 48 + r // 2:] = torch.rand_like(x3[..., :, 48 + r // 2:])  # within reach
        y3 = net(x3)
    assert torch.equal(y2[..., :, :48], y[..., :, :48])
    assert not torch.equal(y3[..., :, :48], y[..., :, :48])                # the radius is not loose
    assert net.margin >= r / 2


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_tiled_generator_equals_whole_frame_with_aligned_tiles(kind):
    from core.models.base import NetworkRestorer
    from core.tiling import Tiler

    net = make_generator(**GENERATORS[kind])
    r = net.receptive_radius
    x = torch.rand(1, 1, 150, 170)
    with torch.no_grad():
        whole = net(x)[0, 0].numpy()
    inner = (slice(r + 4, -r - 4), slice(r + 4, -r - 4))        # away from the frame's own edges
    for margin, tol in ((-(-r // 4) * 4, 1e-5), (net.margin, 0.02 * np.abs(whole).mean())):
        restorer = NetworkRestorer(net, "t", margin=margin, pad_multiple=4, channels_last=False)
        tiler = Tiler(tile=64, overlap=16, margin=margin, align=restorer.align)
        assert all((y0 - tiler.margin) % 4 == 0 and (x0 - tiler.margin) % 4 == 0
                   for y0, _, x0, _ in tiler.grid((150, 170)))
        tiled = restorer.restore_plane(x[0, 0].numpy(), tiler)
        assert tiled.shape == whole.shape
        assert np.abs(tiled - whole)[inner].max() < tol, (margin, np.abs(tiled - whole)[inner].max())


# ----------------------------------------------------------------------------- training helpers

def test_image_pool_and_linear_lr_decay():
    pool = ImagePool(size=3, seed=0)
    first = pool.query(torch.arange(3.0).view(3, 1, 1, 1))
    assert torch.equal(first.flatten(), torch.arange(3.0))
    later = torch.cat([pool.query(torch.full((2, 1, 1, 1), 10.0 + i)) for i in range(20)])
    assert later.shape == (40, 1, 1, 1) and (later < 10).any() and (later >= 10).any()
    assert ImagePool(0).query(first) is first
    f = lr_lambda(100, decay="linear", decay_start=0.5)
    assert f(0) == 1.0 and f(49) == 1.0 and 0.45 < f(75) < 0.55 and f(100) < 0.02 and f(1000) == 0.0


def test_ema_tracks_the_model():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.add_(1.0)
    before = ema.model.weight.clone()
    ema.update(model)
    assert torch.all(ema.model.weight > before) and torch.all(ema.model.weight < model.weight)
    assert not any(p.requires_grad for p in ema.model.parameters())
    other = EMA(torch.nn.Linear(2, 2))
    other.load_state_dict(ema.state_dict())
    assert torch.equal(other.model.weight, ema.model.weight) and other.num_updates == 1


# ----------------------------------------------------------------------------- losses

def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    from scipy.ndimage import gaussian_filter
    return torch.from_numpy(gaussian_filter(x.numpy(), (0, 0, sigma, sigma), mode="reflect"))


def _specimen(size: int = 64) -> torch.Tensor:
    rng = np.random.default_rng(1)
    img = np.zeros((size, size), np.float32)
    yy, xx = np.mgrid[:size, :size]
    for _ in range(12):
        cy, cx, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(2, 6)]
        img += ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) * rng.uniform(0.3, 1.0)
    img += 0.02 * rng.standard_normal(img.shape).astype(np.float32)
    return torch.from_numpy(img)[None, None]


def test_lsgan_losses():
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert losses.lsgan_d_loss(ones, zeros) == 0 and losses.lsgan_g_loss(ones) == 0
    assert losses.lsgan_d_loss(zeros, ones) == 1.0 and losses.lsgan_g_loss(zeros) == 1.0


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity
    sharp = _specimen()
    blurred = _gaussian_blur(sharp, 1.0)
    ref = structural_similarity(blurred[0, 0].numpy(), sharp[0, 0].numpy(), gaussian_weights=True,
                                sigma=1.5, use_sample_covariance=False, data_range=1.0)
    assert float(losses.ssim(blurred, sharp)) == pytest.approx(ref, abs=1e-5)


@pytest.mark.parametrize("fn", [losses.ms_ssim_loss, losses.fourier_amplitude_loss, losses.structure_loss,
                                losses.perceptual_loss])
def test_perceptual_replacement_zero_for_identical_and_grows_with_blur(fn):
    sharp = _specimen()
    assert float(fn(sharp, sharp)) == pytest.approx(0.0, abs=1e-6)
    values = [float(fn(_gaussian_blur(sharp, s), sharp)) for s in (0.5, 1.0, 2.0, 4.0)]
    assert all(b > a for a, b in zip(values, values[1:])), values


def test_perceptual_replacement_gradients_flow_and_feature_matching():
    sharp = _specimen()
    fake = _gaussian_blur(sharp, 2.0).requires_grad_(True)
    disc = PatchDiscriminator(**TINY_DISC)
    _, f_fake = disc(fake, features=True)
    _, f_real = disc(sharp, features=True)
    loss = losses.perceptual_loss(fake, sharp, f_fake, f_real)
    loss.backward()
    assert torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in disc.parameters())
    assert float(losses.feature_matching_loss(f_real, f_real).detach()) == 0.0
    # identical constant images (zero spectrum away from DC) still give finite gradients
    flat = torch.full((1, 1, 16, 16), 0.5, requires_grad=True)
    losses.structure_loss(flat, flat.detach()).backward()
    assert torch.isfinite(flat.grad).all()


# ----------------------------------------------------------------------------- DDPM maths

@pytest.mark.parametrize("objective", ["v", "eps"])
def test_ddim_with_an_oracle_recovers_x0(objective):
    model = ConditionalDDPM(**TINY_DDPM, objective=objective)
    x0 = torch.randn(1, 1, 8, 8)
    x = torch.randn(1, 1, 8, 8)
    for t, t_prev in ddim_timesteps(model.timesteps, 7):
        a = model.alphas_cumprod[t]
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        out = a.sqrt() * eps - (1 - a).sqrt() * x0 if objective == "v" else eps
        x = model.ddim_step(x, out, t, t_prev)
    assert torch.allclose(x, x0, atol=1e-3)


def test_ddpm_schedule_loss_and_data_space():
    model = ConditionalDDPM(**TINY_DDPM)
    ac = model.alphas_cumprod
    assert ac.shape == (100,) and torch.all(ac[1:] < ac[:-1]) and ac[0] > 0.99 and ac[-1] < 1e-3
    pairs = ddim_timesteps(100, 20)
    assert len(pairs) == 20 and pairs[0][0] == 99 and pairs[-1] == (pairs[-1][0], -1)
    sharp, blurred = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    assert torch.allclose(model.from_x0(model.to_x0(sharp, blurred), blurred), sharp, atol=1e-6)
    loss = ddpm_loss(model, sharp, blurred, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and model.unet.head.weight.grad is not None
    assert "alphas_cumprod" not in model.state_dict()          # derived, not stored


def test_ddpm_predictor_learns_by_l1_only_and_the_diffusion_refines_its_estimate():
    model = ConditionalDDPM(**TINY_DDPM, predictor=dict(kind="unet", ngf=4, n_down=1))
    assert model.unet.stem.in_channels == 3                       # x_t, blurred, estimate
    sharp, blurred = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    base = model.base(blurred)
    assert torch.allclose(model.from_x0(model.to_x0(sharp, base), base), sharp, atol=1e-6)
    with pytest.raises(ValueError, match="estimate"):
        model.condition(blurred)
    # the diffusion loss alone leaves the predictor untouched (its estimate is detached) ...
    ddpm_loss(model, sharp, blurred, generator=torch.Generator().manual_seed(0), predictor_weight=0.0).backward()
    assert all(p.grad is None or not p.grad.any() for p in model.predictor.parameters())
    assert model.unet.head.weight.grad.abs().sum() > 0
    # ... and its L1 term trains it
    model.zero_grad()
    ddpm_loss(model, sharp, blurred, generator=torch.Generator().manual_seed(0)).backward()
    assert model.predictor.head.weight.grad.abs().sum() > 0
    assert model.margin >= model.predictor.margin and model.align == 2


def test_ddpm_loss_decreases_on_a_tiny_batch():
    torch.manual_seed(0)
    model = ConditionalDDPM(**TINY_DDPM)
    sharp = _specimen(32)
    blurred = _gaussian_blur(sharp, 2.0)
    sharp, blurred = sharp.repeat(2, 1, 1, 1), blurred.repeat(2, 1, 1, 1)

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(ddpm_loss(model, sharp, blurred, generator=torch.Generator().manual_seed(1)))

    before = fixed_loss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(20):
        opt.zero_grad()
        ddpm_loss(model, sharp, blurred).backward()
        opt.step()
    assert fixed_loss() < 0.8 * before


# ----------------------------------------------------------------------------- export -> load -> predict

def _export(tmp_path, name: str):
    if name == "ddpm":
        net = EMA(ConditionalDDPM(**TINY_DDPM)).model
    else:
        net = ResnetGenerator(**TINY_GEN, residual=True)
        torch.nn.init.normal_(net.net[-1].weight, 0, 0.1)       # not the identity
    card = make_card(name, net, training={"steps": 0, "command": "test"})
    return save_weights(tmp_path / f"{name}.safetensors", net.state_dict(), card), net


@pytest.mark.parametrize("name", ["comi", "cyclegan", "ddpm"])
def test_export_load_predict_round_trip(tmp_path, name):
    from core.engine import restore
    from core.models.registry import load_model

    path, net = _export(tmp_path, name)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["model"] == name and card["architecture"] == net.config and card["notes"]
    # one view and no Keep brightness: net(x) below
    params = {"steps": 3} if name == "ddpm" else {"orientations": 1, "brightness_px": 0.0}
    restorer = load_model(name, weights=path, device="cpu", **params)
    assert restorer.name == name and restorer.margin > 0
    if name == "ddpm":
        assert restorer.passes == 3
    rng = np.random.default_rng(0)
    image = (rng.random((110, 141)) * 3000 + 500).astype(np.uint16)
    out = restore(image, restorer, tile=64, overlap=16, seed=1)
    assert out.shape == image.shape and out.dtype == np.uint16
    assert not np.array_equal(out, image)
    again = restore(image, restorer, tile=64, overlap=16, seed=1)
    assert np.array_equal(out, again)
    if name != "ddpm":   # the engine's tiled result is close to the network on the whole frame
        from core.normalize import denormalize, normalize, percentile_params
        restorer.amp = False                                   # float32 for an exact comparison
        out = restore(image, restorer, tile=64, overlap=16, seed=1)
        p = percentile_params(image)
        with torch.no_grad():
            y = net(torch.from_numpy(normalize(image, p))[None, None])[0, 0].numpy()
        direct = np.clip(np.round(denormalize(y, p)), 0, 65535)
        r = receptive_radius(net.config)                      # the frame's own edge effects
        inner = (slice(r, -r), slice(r, -r))
        diff = np.abs(out.astype(float) - direct)[inner]
        correction = np.abs(direct - image)[inner].mean()
        assert diff.mean() < 0.01 * correction and diff.max() < 0.2 * correction
    # a float32 stack: each plane restored, shape and dtype kept
    stack = rng.random((2, 33, 40)).astype(np.float32)
    out = restore(stack, restorer, axes="ZYX", tile=32, overlap=8)
    assert out.shape == stack.shape and out.dtype == np.float32 and np.isfinite(out).all()


def test_card_architecture_of_any_size_loads(tmp_path):
    from core.models.registry import load_model

    net = ResnetGenerator(ngf=6, n_down=1, n_blocks=2, residual=False)
    card = make_card("cyclegan", net, inference={"margin": 13})
    path = save_weights(tmp_path / "big.safetensors", net.state_dict(), card)
    restorer = load_model("cyclegan", weights=path, device="cpu", brightness_px=0.0)
    assert restorer.net.config == net.config
    assert restorer.margin == 13 and restorer.align == 2   # the card's margin; 2**n_down grid
    from core.tiling import Tiler

    assert Tiler(tile=64, margin=restorer.margin, align=restorer.align).margin == 14
    for a, b in zip(restorer.net.state_dict().values(), net.state_dict().values()):
        assert torch.equal(a, b)
    with torch.no_grad():
        assert math.isfinite(float(restorer.net(torch.rand(1, 1, 9, 9)).mean()))


def test_structure_losses_stay_finite_under_bf16_autocast():
    """SSIM's variance terms under bf16 went negative and turned COMI's weights to NaN."""
    from core.models.losses import fourier_amplitude_loss, ms_ssim_loss

    torch.manual_seed(0)
    x = torch.rand(2, 1, 64, 64) * 0.01 + 0.5
    y = (x + 0.001 * torch.randn_like(x)).requires_grad_(True)
    reference = ms_ssim_loss(y, x) + fourier_amplitude_loss(y, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = ms_ssim_loss(y, x) + fourier_amplitude_loss(y, x)
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss.item() >= 0
    assert abs(loss.item() - reference.item()) < 1e-5
    loss.backward()
    assert torch.isfinite(y.grad).all()


def test_averaging_views_makes_the_result_follow_a_mirrored_or_turned_image(tmp_path):
    """With 8 views the restored image of a mirrored (or turned) field is the mirrored result;
    with 1 view a network that has a preferred direction breaks that, and 3 views are refused."""
    from core.engine import restore
    from core.models.registry import get_entry, load_model

    path, _ = _export(tmp_path, "comi")
    rng = np.random.default_rng(2)
    image = (rng.random((96, 80)) * 3000 + 500).astype(np.float32)
    results = {}
    for views in (1, None, 8):                                # None: the default, 2 views
        model = load_model("comi", weights=path, device="cpu", orientations=views)
        model.amp = False
        a = restore(image, model, tile=48, overlap=8)
        b = restore(np.ascontiguousarray(np.rot90(image)), model, tile=48, overlap=8)
        c = restore(np.ascontiguousarray(image[:, ::-1]), model, tile=48, overlap=8)
        results[views] = (np.abs(np.rot90(a) - b).max(), np.abs(a[:, ::-1] - c).max(),
                          np.abs(a - image).mean())
    scale = results[1][2]                                     # the size of the correction
    assert results[8][0] < 1e-3 * scale and results[8][1] < 1e-3 * scale
    assert results[1][0] > 0.05 * scale and results[1][1] > 0.05 * scale
    # by default the image and its left-right mirror are averaged: mirrored in, mirrored out
    assert results[None][1] < 1e-3 * scale and results[None][0] > 0.05 * scale
    assert get_entry("comi").params["orientations"].default == 2
    assert "orientations" in get_entry("cyclegan").params
    with pytest.raises(ValueError, match="orientations must be one of 1, 2, 4, 8"):
        load_model("comi", weights=path, device="cpu", orientations=3)


class _Brighten(torch.nn.Module):
    """A 'restoration' that sharpens a little and adds a brightness offset, as CycleGAN's
    generator was measured to do on sharp regions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blur = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return x + 0.5 * (x - blur) + 0.05


def test_keep_brightness_restores_the_inputs_large_scale_brightness_and_keeps_tiles_seamless():
    """Defocus spreads light, it neither adds nor removes it: with Keep brightness the output's
    large-scale content is the input's (the offset is gone), the fine detail the network added
    stays, and tiles still equal the whole frame."""
    from scipy import ndimage

    from core.models.base import NetworkRestorer
    from core.models.registry import get_entry
    from core.tiling import Tiler

    rng = np.random.default_rng(3)
    x = ndimage.gaussian_filter(rng.random((160, 144)), 2).astype(np.float32)
    plain = NetworkRestorer(_Brighten(), "test", margin=8, channels_last=False)
    kept = NetworkRestorer(_Brighten(), "test", margin=8, channels_last=False, brightness_px=4.0)
    assert kept.margin >= 12                      # the low-pass reaches 3 sigma into the halo
    whole = Tiler(tile=4096, overlap=0, margin=kept.margin)
    a = plain.restore_plane(x, whole)
    b = kept.restore_plane(x, whole)
    assert abs(float((a - x).mean()) - 0.05) < 1e-3              # without it: brighter
    assert abs(float((b - x).mean())) < 2e-3                     # with it: the input's brightness
    fine = lambda im: im - ndimage.gaussian_filter(im, 4)        # noqa: E731
    assert np.abs(fine(b) - fine(a)).mean() < 0.1 * np.abs(fine(a) - fine(x)).mean()
    tiled = kept.restore_plane(x, Tiler(tile=48, overlap=12, margin=kept.margin))
    assert np.abs(tiled - b).max() < 1e-5
    assert get_entry("cyclegan").params["brightness_px"].default == 8.0
    assert get_entry("comi").params["brightness_px"].default == 0.0
