"""The number of CPU threads torch uses while a pipeline is trained.

Registered as the callback ``textcat_kit.torch_threads.v1`` (entry point ``spacy_callbacks``)
for ``[initialize.before_init]``: ``nlp.initialize()`` (which ``spacy train`` calls once,
before the first update) sets torch's intra-op thread count for the rest of the training
process. It is not part of ``spacy.load``, so a trained pipeline does not change the thread
count of the process that loads it.

Why: torch runs every operator of a transformer update in parallel over all its threads and
waits for the slowest one. When the cores are shared (other jobs, a CI runner, several
trainings at once) a descheduled thread stalls every one of the hundreds of small operators
of a step, and two threads on two busy cores can be several times slower than one (see
docs/encoders.md). ``threads = 0`` keeps torch's default (one thread per physical core),
right on a machine of your own; set it to the cores this training actually has to itself.
"""

from __future__ import annotations

from collections.abc import Callable

from spacy.language import Language

from ..errors import ConfigError, Errors


def make_torch_threads(threads: int = 0) -> Callable[[Language], None]:
    """Callback for ``[initialize.before_init]`` that sets ``torch.set_num_threads(threads)``
    (0: leave torch's default)."""
    if threads < 0:
        raise ConfigError(Errors.E464.format(value=threads))

    def set_torch_threads(nlp: Language) -> None:
        if threads:
            set_threads(threads)

    return set_torch_threads


def set_threads(threads: int) -> int:
    """Set torch's intra-op thread count (when ``threads`` > 0); return the count in force."""
    try:
        import torch
    except ImportError as err:  # the transformer configs need torch anyway
        raise ConfigError(Errors.E452.format(error=err)) from err
    if threads > 0:
        torch.set_num_threads(threads)
    return int(torch.get_num_threads())
