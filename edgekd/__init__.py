"""edgekd: compress a trained PyTorch classifier for an edge device and prove it meets the budget.

The public Python API mirrors the command line: each stage is a function usable on its own.

    from edgekd import compress, CompressConfig
    result = compress(CompressConfig(teacher="teacher.pt", data="digits", out="runs/demo"))
"""

from edgekd.errors import EdgekdError

__version__ = "0.1.0"

__all__ = ["EdgekdError", "__version__", "compress", "CompressConfig"]


def __getattr__(name: str):
    # The pipeline imports torch, timm and modelopt; keep `import edgekd` light.
    if name == "compress":
        from edgekd.pipeline.compress import compress

        return compress
    if name == "CompressConfig":
        from edgekd.config import CompressConfig

        return CompressConfig
    raise AttributeError(f"module 'edgekd' has no attribute {name!r}")
