"""`edge-sed deploy`: a verified bundle to Raspberry Pi boards over SSH, as a service, with
rollback."""
