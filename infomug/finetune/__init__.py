"""Transfer the way the paper measures it: linear, partial and full fine-tuning, against from-scratch.

from infomug.finetune import finetune, build_settings
report = finetune(["runs/mae", "runs/clip"], build_settings(["full.steps=600"]), out="runs/ft")
report.cells()      # one Cell per model x task x mode x label budget, test accuracy with its interval
"""

from .api import finetune
from .results import Cell, FinetuneReport, Fit, Interval, paired_difference
from .settings import MODES, FinetuneSettings, LinearRecipe, Recipe, build_settings
from .tasks import BUILTIN_TASKS, Task, build_task

__all__ = [
    "BUILTIN_TASKS",
    "MODES",
    "Cell",
    "FinetuneReport",
    "FinetuneSettings",
    "Fit",
    "Interval",
    "LinearRecipe",
    "Recipe",
    "Task",
    "build_settings",
    "build_task",
    "finetune",
    "paired_difference",
]
