"""The device runtime: what runs on a Pi or is mirrored on a microcontroller.

Settings and errors, audio I/O, the streaming log-mel front end, the bundle (load, verify, run
through LiteRT), the TFLite reader, the smoother and the detector loop that wires them. It
imports only itself (and numpy, soundfile, LiteRT)."""
