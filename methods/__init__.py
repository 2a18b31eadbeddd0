"""CLIP adaptation methods: one module per method, each declared by a card in `METHODS`.

`from bench.methods import METHODS` imports no torch: the cards (methods/settings.py) carry
what a command needs without building a method; `METHODS[name].load()` imports the
implementation.  Installed as `bench.methods` (pyproject.toml maps this folder there), so the
name cannot collide with another top-level `methods`.  Imported under any other name (from a
checkout's root, `import methods`), this folder hands the import over to whatever else bears
that name.
"""
if __name__ == "bench.methods":
    from bench.methods.registry import METHODS, MethodCard, register_method
    from bench.methods import settings  # noqa: F401  (declares the cards, in the order of every list)

    __all__ = ["METHODS", "MethodCard", "register_method"]
else:
    from bench.import_names import hand_over

    hand_over(__name__, __file__)
