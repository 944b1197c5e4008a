"""Shared timing and memory measurement of the benchmark scripts."""

import collections
import resource
import sys
import time

import torch

# seconds per training epoch (mean), of one validation pass, and the peak memory
# while they ran: resident MiB, and allocated CUDA MiB on a GPU (else None)
Timing = collections.namedtuple("Timing", "epoch_s eval_s peak_mib peak_cuda_mib")


def machine_line():
    """The machine a benchmark ran on, for its header line: torch, threads, CPU model,
    cores and memory (as the run records give them)."""
    from recbole_ssl.record import machine

    m = machine()
    return (
        f"torch {torch.__version__}, {m['threads']} threads, {m['cpu']} "
        f"({m['arch']}), {m['cores']} cores, {m['memory_gib']} GiB"
    )


def reset_peak_memory():
    """Start a new peak: Linux's high-water mark of this process's resident memory
    (``VmHWM``, reset by writing 5 to ``/proc/self/clear_refs``) and CUDA's."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass  # not Linux, or not allowed: the peak is then the process's so far
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory():
    """``(resident MiB, CUDA MiB or None)`` at their peak since
    :func:`reset_peak_memory` (the resident peak is the whole process's where the
    system cannot reset it). The resident figure holds everything the process holds:
    the dataset and the model as well as what training adds."""
    rss = None
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    rss = int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    if rss is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss = peak / 2**20 if sys.platform == "darwin" else peak / 1024
    cuda = (
        torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    )
    return rss, cuda


def memory_columns(timing):
    """The peak memory of ``timing`` as the scripts print it."""
    text = f"{timing.peak_mib:>10.0f}"
    if timing.peak_cuda_mib is not None:
        text += f"{timing.peak_cuda_mib:>11.0f}"
    return text


def memory_header():
    return f"{'peak MiB':>10}" + (
        f"{'CUDA MiB':>11}" if torch.cuda.is_available() else ""
    )


def time_epochs(trainer, train_data, valid_data, epochs):
    """Mean seconds of ``epochs`` training epochs, of one validation pass, and the peak
    memory while they ran (a :data:`Timing`)."""
    reset_peak_memory()
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        trainer._train_epoch(train_data, epoch)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    trainer.evaluate(valid_data, load_best_model=False)
    eval_s = time.perf_counter() - start
    trainer.tensorboard.close()
    return Timing(sum(times) / len(times), eval_s, *peak_memory())
