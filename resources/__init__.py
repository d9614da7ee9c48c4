"""Shipped data: default weights with their model cards, sample images."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
WEIGHTS = ROOT / "weights"
SAMPLES = ROOT / "samples"
