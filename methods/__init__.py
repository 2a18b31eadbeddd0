"""CLIP adaptation methods: one module per method, all registered in `METHODS`.

Installed as `bench.methods` (pyproject.toml maps this folder there), so the name cannot
collide with another top-level `methods`.  Imported under any other name (from a checkout's
root, `import methods`), this folder hands the import over to whatever else bears that name.
"""
if __name__ == "bench.methods":
    from bench.methods.base import Method, TemplateMethod
    from bench.methods.contract import MethodContract, MethodError, count_parameters
    from bench.methods.registry import METHODS, register_method

    # Importing a method module registers it; this order is the order of every list of methods
    # (reports, plots, sweeps, the speed benchmark, test matrices).
    from bench.methods import zeroshot, full, coop, cocoop, vpt, maple, mmap, clip_adapter, bitfit, lora  # noqa: F401,I001

    __all__ = ["METHODS", "Method", "MethodContract", "MethodError", "TemplateMethod", "count_parameters",
               "register_method"]
else:
    from bench.import_names import hand_over

    hand_over(__name__, __file__)
