"""deblur inside napari: a dock widget and sample data over the same core engine (npe2
manifest ``napari.yaml``; install with ``pip install -e ".[napari]"``).

A second front end beside the desktop app: it imports core only (never the app's PySide6
modules: napari may run on another Qt binding, through qtpy), and nothing imports it.
"""
