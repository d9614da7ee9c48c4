"""deblur's desktop application (PySide6 + pyqtgraph): open, mark, restore, compare, save.

Qt lives only in this package; it uses core for every computation (DESIGN §1).
"""

from core import __version__

__all__ = ["__version__"]
