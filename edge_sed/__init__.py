"""edge-sed: the on-device runtime and CLI (numpy, LiteRT, sounddevice, click).

Importing edge_sed never imports torch or TensorFlow; train/, convert/ and firmware_sim/ depend
on edge_sed, never the other way round.
"""

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("edge-sed")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
