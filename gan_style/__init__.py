"""gan_style: image style translation: unpaired (CycleGAN, CUT, FastCUT; see ``gan_style.methods.METHODS``).

The inference API is imported lazily so ``import gan_style`` stays cheap and never pulls in
training code::

    from gan_style import load_generator, translate_image, translate_video
"""

__version__ = "0.1.0"

_LAZY = {
    "load_generator": "inference.translate",
    "translate_image": "inference.translate",
    "translate_video": "inference.video",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'gan_style' has no attribute {name!r}")
