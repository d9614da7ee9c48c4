"""A diffusion model in the app: the seed picks the sample, "Sample again" draws another one,
and Compare > Spread shows where the samples disagree."""

from __future__ import annotations

import numpy as np

from core.roi import Rect


def test_seed_sample_again_and_spread(window, small_tif, qtbot):
    window.open_file(small_tif)
    window.state.add_roi(Rect(32, 32, 48, 48))
    assert window.select_model("ddpm")
    panel = window.model_panel
    panel.set_param("steps", 2)
    assert panel.seed_box is not None
    qtbot.waitUntil(panel.seed_box.isVisible, timeout=2000)
    with qtbot.waitSignal(window.run_finished, timeout=120000) as sig:
        assert window.start_run()
    assert sig.args == ["done"], window.last_error_text
    with qtbot.waitSignal(window.run_finished, timeout=120000):
        panel.sample_again_btn.click()
    first, second = window.state.results
    assert (first.seed, second.seed) == (0, 1) and "seed 1" in second.label
    assert not np.array_equal(first.image.data, second.image.data)
    cmp = window.compare
    button = cmp.mode_buttons["Spread"]
    assert button.isEnabled() and button.text() == "Spread (2 samples)"
    cmp.set_mode("Spread")
    spread = cmp.spread.data
    assert spread[40:70, 40:70].mean() > 0 and spread[:20, :20].max() == 0    # outside: identical
    assert cmp.spread_legend.isVisible()
    # the same seed gives the same sample
    panel.seed_box.setValue(0)
    with qtbot.waitSignal(window.run_finished, timeout=120000):
        window.start_run()
    assert np.array_equal(window.state.results[-1].image.data, first.image.data)


def test_spread_needs_a_stochastic_model_with_two_samples(window, small_tif, qtbot):
    window.open_file(small_tif)
    window.select_model("richardson-lucy")
    assert window.model_panel.seed_box is None
    window.model_panel.set_param("iterations", 3)
    for _ in range(2):
        with qtbot.waitSignal(window.run_finished, timeout=30000):
            window.start_run()
    assert window.state.results[-1].seed is None
    assert not window.compare.mode_buttons["Spread"].isEnabled()
