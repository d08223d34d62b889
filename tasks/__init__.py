"""rlvr.tasks: datasets with their prompt templates and verifiers (one module per family).

`get_task(name, **options)` builds a task; `list_tasks()` names them. Built-ins: gsm8k, math,
countdown, arithmetic, code (humaneval / mbpp / stdio styles), dataset (any file or hub
dataset with a column mapping) and reasoning_gym (reasoning-gym's generators; `pip install 'rlvr[gym]'`).
"""

from rlvr.tasks.base import (
    Task,
    TaskDataError,
    get_task,
    list_tasks,
    load_rows,
    register_task,
    rows_to_samples,
)

__all__ = ["Task", "TaskDataError", "get_task", "list_tasks", "load_rows", "register_task", "rows_to_samples"]
