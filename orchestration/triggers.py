"""Record-triggered starts (filled in by the engine work)."""


def install():
    pass
