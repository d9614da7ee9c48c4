"""`python -m training` and `torchrun ... -m training`: the same as `deblur-train`."""

from training.cli import main

raise SystemExit(main())
