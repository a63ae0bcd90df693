"""Running past one process: the batch engine (torchrun or one process) and the jobs on it."""
