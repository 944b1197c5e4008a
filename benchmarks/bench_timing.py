"""Shared timing of the benchmark scripts."""

import time


def time_epochs(trainer, train_data, valid_data, epochs):
    """Mean seconds of ``epochs`` training epochs, and of one validation pass."""
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        trainer._train_epoch(train_data, epoch)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    trainer.evaluate(valid_data, load_best_model=False)
    eval_s = time.perf_counter() - start
    trainer.tensorboard.close()
    return sum(times) / len(times), eval_s
