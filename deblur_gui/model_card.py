"""A model's card in the Model panel: plain words first (``core.models.plain``), warnings when
the open image is far from the training data, the technical record behind "Details"."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from core.image import Image
from core.models.plain import fit_warnings, kind_words, plain_lines, technical_lines
from core.models.spec import ModelEntry

__all__ = ["ModelCard"]



class ModelCard(QtWidgets.QWidget):
    """The card label (`text`), the Details toggle (`details_btn`) and the details (`details`)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QtWidgets.QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.label.setStyleSheet("QLabel { background: #2b2d31; border-radius: 4px; padding: 6px; "
                                 "color: #dadce0; }")
        self.label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred,
                                 QtWidgets.QSizePolicy.Policy.Minimum)
        layout.addWidget(self.label)
        # the technical record (training, validation, architecture and losses) on demand
        self.details_btn = QtWidgets.QToolButton()
        self.details_btn.setText("Details")
        self.details_btn.setCheckable(True)
        self.details_btn.setArrowType(QtCore.Qt.ArrowType.RightArrow)
        self.details_btn.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.details_btn.setAutoRaise(True)
        self.details = QtWidgets.QLabel()
        self.details.setWordWrap(True)
        self.details.setStyleSheet("QLabel { color: #9aa0a6; padding: 0 6px; }")
        self.details.setVisible(False)
        self.details_btn.toggled.connect(self._show_details)
        layout.addWidget(self.details_btn)
        layout.addWidget(self.details)

    def text(self) -> str:
        return self.label.text()

    def show_entry(self, entry: ModelEntry | None, weights: str | Path | None,
                   image: Image | None, speed: float | None) -> None:
        """Fill the card for a model, the weights file in use (None: none needed), the open
        image (for the warnings) and its measured speed here (MP/s, or None)."""
        from core.models.registry import read_card

        if entry is None:
            self.label.setText("No models are installed.")
            self.details.setText("")
            return
        lines = [f"<b>{html.escape(entry.display_name)}</b> \u2014 "
                 f"{html.escape(kind_words(entry))}"]
        card: dict = {}
        if entry.needs_weights and weights is not None and Path(weights).is_file():
            try:
                card = read_card(weights)
            except ValueError as exc:
                lines.append(f"<span style='color:#f28b82'>{html.escape(str(exc))}</span>")
        for text in plain_lines(entry, card):
            style = " style='color:#fdd663'" if text.startswith("Watch out") else ""
            lines.append(f"<span{style}>{html.escape(text)}</span>")
        if speed:
            lines.append(html.escape(f"On this computer: {speed:.2f} megapixels per second with "
                                     "these settings."))
        if image is not None:
            warnings = fit_warnings(card, rgb="S" in image.axes,
                                    pixel_size_um=image.pixel_size[1] if image.pixel_size else None)
            lines += [f"<span style='color:#f28b82'>{html.escape(w)}</span>" for w in warnings]
        self.label.setText("<br>".join(lines))
        technical = [entry.summary] + technical_lines(card)
        self.details.setText("<br>".join(html.escape(t) for t in technical))

    def _show_details(self, shown: bool) -> None:
        self.details.setVisible(shown)
        self.details_btn.setArrowType(QtCore.Qt.ArrowType.DownArrow if shown
                                      else QtCore.Qt.ArrowType.RightArrow)
