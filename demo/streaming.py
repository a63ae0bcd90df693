"""Long actions as streams: the work runs in a thread, its progress comes back as items to iterate over.

A UI streams a long action by iterating ``run(work, stop)``; when it stops iterating before the end -- the page
was closed, the client disconnected, the event was cancelled: Gradio then closes the generator -- ``stop()`` is
called and the thread is waited for, so an abandoned optimisation never keeps running (and never holds the queue
of long actions) after its user has gone. No Gradio import.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np


@dataclass
class Progress:
    step: int
    total: int
    text: str                              # in words, for a status line
    image: Optional[np.ndarray] = None     # an intermediate result [R, R, 3] uint8, when there is one

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / max(self.total, 1))


@dataclass
class Done:
    result: Any


_END = object()


def run(work: Callable[[Callable[[Progress], None]], Any], stop: Callable[[], None]
        ) -> Iterator[Union[Progress, Done]]:
    """Yield every Progress that ``work(report)`` reports, then ``Done(work's result)``; work's exception is
    raised here. Closing the iterator early calls ``stop()`` and waits for the work to end."""
    q: "queue.Queue" = queue.Queue()
    out: dict = {}

    def target():
        try:
            out["result"] = work(q.put)
        except BaseException as e:  # noqa: BLE001 -- handed to the consumer below
            out["error"] = e
        q.put(_END)

    t = threading.Thread(target=target, daemon=True, name="editgan-long-action")
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                break
            yield item
    finally:
        if t.is_alive():        # the consumer left early: end the work too, and wait so the queue slot is free
            stop()
        t.join()
    if "error" in out:
        raise out["error"]
    yield Done(out["result"])
