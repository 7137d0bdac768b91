"""A sandbox child process: evaluates what isolation.py sends until its pipe closes.

    python -m engine.expressions.child SOCKET_FD MEMORY_MB

Started by isolation.py as a fresh interpreter (nothing of the server inherited); it imports
only the evaluator, limits its own address space, then answers one request at a time.
"""
from __future__ import annotations

import os
import pickle
import resource
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from . import sandbox
from .errors import ExpressionError
from .isolation import dumps


def _address_space() -> int:
    """This process's virtual memory now, in bytes."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def limit_memory(memory_mb: int) -> None:
    """Let this process allocate `memory_mb` more than it holds now, and dump no core."""
    try:
        limit = _address_space() + memory_mb * 2**20
    except OSError:  # no /proc: a fixed ceiling instead
        limit = (512 + memory_mb) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _callback(conn: Connection, name: str) -> Callable:
    """A function of the parent, called over the pipe."""
    def call(*args: Any, **kwargs: Any) -> Any:
        conn.send_bytes(dumps(("call", name, args, kwargs), f"the arguments of {name}()"))
        answer = pickle.loads(conn.recv_bytes())  # from the parent: trusted
        if answer[0] == "ok":
            return answer[1]
        raise ExpressionError(answer[1])
    call.__name__ = call.__qualname__ = name
    return call


def answer(conn: Connection, request: tuple, memory_mb: int) -> bool:
    """Evaluate one request and send the answer; False when this process should end."""
    kind, src, names, functions, timeout_s = request
    for name in functions:
        names[name] = _callback(conn, name)
    fresh = True
    try:
        if kind == "eval":
            payload = dumps(("ok", sandbox.evaluate_here(src, names, timeout_s)), "the result")
        else:
            data = names.pop("\0data")
            sandbox.run_script_here(src, data, timeout_s, names)
            payload = dumps(("ok", data), "the data the script leaves")
    except ExpressionError as exc:
        payload = pickle.dumps(("error", exc.message, exc.line, False))
    except MemoryError:
        fresh = False  # its heap may be fragmented now: the parent starts another
        payload = pickle.dumps(("error", f"uses more memory than scenario code may "
                                         f"({memory_mb} MB)", None, True))
    conn.send_bytes(payload)
    return fresh


def main(argv: list[str]) -> None:
    """Serve requests on the socket given by its file descriptor until it closes."""
    fd, memory_mb = (int(a) for a in argv)
    conn = Connection(fd)
    limit_memory(memory_mb)
    while True:
        try:
            request = pickle.loads(conn.recv_bytes())  # from the parent: trusted
        except (EOFError, OSError):
            return
        if not answer(conn, request, memory_mb):
            return


if __name__ == "__main__":
    main(sys.argv[1:])
