"""rlvr.sandboxes: run untrusted programs (Docker warm pool, or a local fallback that isolates less)."""

from rlvr.sandboxes.base import ExecResult, Sandbox

__all__ = ["ExecResult", "Sandbox"]
