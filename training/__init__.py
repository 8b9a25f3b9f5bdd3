"""Train any net on CIFAR-10 with the assignment's recipe (`rftrain`, `training.run.train_run`).

Importing the package tunes glibc's malloc for large batches on the CPU (see `allocator`).
"""

from .allocator import tune_malloc

tune_malloc()
