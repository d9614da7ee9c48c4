"""deblur models as bioimage.io model packages (Fiji/deepImageJ, ilastik, BiaPy, QuPath, ...).

`export` writes a package (needs the ``bioimageio`` extra: ``pip install -e ".[bioimageio]"``);
`package_files` reads a deblur model back out of one (standard library only), so
``deblur predict --weights MODEL.zip`` and the app's Load weights take either file.
"""
