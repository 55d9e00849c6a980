"""`edge-sed listen`: the device loop on a microphone or a file, at real-time pace."""
