"""The Qt binding we install must not leak references to True on Signal.emit.

PySide6 6.11/6.12 do: on CPython < 3.12 the interpreter aborts (bool_dealloc) after a few
thousand emits, i.e. after a minute of mouse moves over a pyqtgraph view. pyproject pins
PySide6 < 6.11 there; this test fails if that pin is loosened.
"""

import sys

from PySide6 import QtCore


def test_emit_does_not_leak_true():
    class Probe(QtCore.QObject):
        fired = QtCore.Signal()

    probe = Probe()
    before = sys.getrefcount(True)
    for _ in range(200):
        probe.fired.emit()
    assert sys.getrefcount(True) >= before - 5
