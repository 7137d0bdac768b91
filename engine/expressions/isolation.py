"""Scenario expressions and scripts run in child processes, so their limits hold for real.

The restricted evaluator (sandbox.py) stops runaway *bytecode* at its deadline, but one C-level
operation (`('a'*999998+'b') in ['a'*999999]*200000`, `str()` of a huge list, a format width of
two billion) runs to its end holding the GIL, and memory is only bounded by the machine. So every
evaluation is sent to a child process of a small pool (child.py, a fresh interpreter each):

- the child's address space is limited (`setrlimit(RLIMIT_AS)`, `memory_mb` beyond what it had
  after start): an allocation past it is a MemoryError there, and the child is replaced;
- the parent waits for the answer until the deadline plus `GRACE_S` (the child's own tracer
  reports a timeout with its line first), then kills the child: the server's threads never wait
  longer, and nothing the code allocated stays in the server;
- functions among the names (now(), add_working_days(), …) stay in the parent: the child calls
  them back over its pipe, with arguments and results no larger than `MAX_MESSAGE`;
- the child's answers are unpickled with a loader that builds plain values only, so even code
  that escaped the evaluator there could not make the parent run anything.

`budget(seconds)` bounds the evaluations of a whole run (a dry run) in the thread that opens it.
"""
from __future__ import annotations

import contextlib
import contextvars
import io
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .errors import ExpressionError
from .sandbox import check_expression, check_script

GRACE_S = 0.5
MAX_MESSAGE = 8 * 2**20  # bytes of one pickled result, names or callback
DEFAULT_MEMORY_MB = 256
DEFAULT_PROCESSES = 4

# What a child's answer may contain besides plain builtins: values a script or an expression
# may produce from task data (sets, ranges, dates and times). Nothing that runs code.
_LOADABLE = {("builtins", n) for n in ("set", "frozenset", "range", "complex", "slice",
                                       "bytearray")} | \
    {("datetime", n) for n in ("datetime", "date", "time", "timedelta", "timezone")} | \
    {("zoneinfo", "ZoneInfo._unpickle")}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _LOADABLE:
            raise pickle.UnpicklingError(f"{module}.{name} is not a plain value")
        return super().find_class(module, name)


def _loads(payload: bytes) -> Any:
    """A child's message as plain values (never code)."""
    return _PlainUnpickler(io.BytesIO(payload)).load()


def dumps(value: Any, what: str) -> bytes:
    """`value` pickled for the other side, or ExpressionError naming `what` when it cannot go."""
    try:
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError) as exc:
        raise ExpressionError(f"{what} is not a plain value ({type(exc).__name__})") from None
    if len(payload) > MAX_MESSAGE:
        raise ExpressionError(f"{what} is too large ({len(payload):,} bytes; limit "
                              f"{MAX_MESSAGE:,})")
    return payload


# -- the parent -----------------------------------------------------------------------------------

class _Worker:
    """One child process (child.py) and the parent's end of its socket."""

    def __init__(self, memory_mb: int):
        ours, theirs = socket.socketpair()
        with theirs:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine.expressions.child", str(theirs.fileno()),
                 str(memory_mb)], pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                close_fds=True)
        self.conn = Connection(ours.detach())

    def kill(self) -> None:
        """Stop the child at once and reap it."""
        self.process.kill()
        self.process.wait(5)
        self.conn.close()


class Pool:
    """Child processes evaluating scenario code, at most `processes` at a time."""

    def __init__(self, processes: int = DEFAULT_PROCESSES, memory_mb: int = DEFAULT_MEMORY_MB):
        self.processes, self.memory_mb = processes, memory_mb
        self._idle: list[_Worker] = []
        self._busy = 0
        self._free = threading.Condition()
        self._pid = os.getpid()

    def _acquire(self, deadline: float) -> _Worker:
        with self._free:
            while not self._idle and self._busy >= self.processes:
                if not self._free.wait(max(0.0, deadline - time.monotonic())):
                    raise ExpressionError("no sandbox process became free in time")
            self._busy += 1
            while self._idle:
                worker = self._idle.pop()
                if worker.process.poll() is None:
                    return worker
                worker.kill()  # died while idle (killed from outside): reap it, take another
        try:
            return _Worker(self.memory_mb)
        except BaseException:
            self._release(None)
            raise

    def _release(self, worker: _Worker | None) -> None:
        with self._free:
            self._busy -= 1
            if worker is not None:
                self._idle.append(worker)
            self._free.notify()

    def run(self, request: tuple, functions: Mapping[str, Callable], timeout_s: float) -> Any:
        """Send one evaluation to a child; its value, or ExpressionError."""
        payload = dumps(request, "the data given to the expression")
        deadline = time.monotonic() + timeout_s + GRACE_S
        worker = self._acquire(deadline)
        healthy = False
        try:
            worker.conn.send_bytes(payload)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not worker.conn.poll(left):
                    raise ExpressionError(f"timed out after {float(timeout_s)} s")
                answer = _loads(worker.conn.recv_bytes(MAX_MESSAGE + 1024))
                if answer[0] == "call":
                    worker.conn.send_bytes(_call(functions, *answer[1:]))
                    continue
                if answer[0] == "ok":
                    healthy = True
                    return answer[1]
                _, message, line, restart = answer
                healthy = not restart
                raise ExpressionError(message, line)
        except (EOFError, OSError, pickle.UnpicklingError, ValueError, TypeError,
                IndexError) as exc:
            # Died (killed by the kernel, crashed) or sent something it must not.
            raise ExpressionError(f"the sandbox process failed ({type(exc).__name__}); "
                                  f"the code was stopped") from None
        finally:
            if not healthy:
                worker.kill()
            self._release(worker if healthy else None)

    def close(self) -> None:
        """Stop the idle children (busy ones stop when their run ends)."""
        with self._free:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


def _call(functions: Mapping[str, Callable], name: str, args: tuple, kwargs: dict) -> bytes:
    """Run a parent function the child called; its answer, pickled."""
    try:
        value = functions[name](*args, **kwargs)
    except ExpressionError as exc:
        return pickle.dumps(("error", exc.message))
    except Exception as exc:  # noqa: BLE001 - reported to the scenario's code as its error
        return pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
    try:
        return dumps(("ok", value), f"the result of {name}()")
    except ExpressionError as exc:
        return pickle.dumps(("error", exc.message))


_pool: Pool | None = None
_pool_lock = threading.Lock()


def configure(processes: int = DEFAULT_PROCESSES, memory_mb: int = DEFAULT_MEMORY_MB) -> None:
    """Size the pool (Settings: IOC_SANDBOX_PROCESSES, IOC_SANDBOX_MEMORY_MB)."""
    global _pool
    with _pool_lock:
        old = _pool
        if old is not None and old._pid == os.getpid() and \
                (old.processes, old.memory_mb) == (processes, memory_mb):
            return  # every Services of a process asks the same: keep the running children
        _pool = Pool(processes, memory_mb)
    if old is not None and old._pid == os.getpid():
        old.close()


def pool() -> Pool:
    """This process's pool; a forked process (gunicorn worker) starts its own."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._pid != os.getpid():
            # A fork's copy of the parent's pipes belongs to the parent: never use them.
            _pool = Pool(_pool.processes, _pool.memory_mb) if _pool else Pool()
        return _pool


# -- a budget for a whole run ---------------------------------------------------------------------

@dataclass
class _Budget:
    seconds: float
    left: float
    what: str


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("sandbox_budget",
                                                                         default=None)


@contextlib.contextmanager
def budget(seconds: float, what: str) -> Iterator[None]:
    """Every evaluation in this block shares `seconds` (`what`: the run, as errors name it)."""
    token = _budget.set(_Budget(seconds, seconds, what))
    try:
        yield
    finally:
        _budget.reset(token)


def _timed(timeout_s: float, run: Callable[[float], Any]) -> Any:
    spent = _budget.get()
    if spent is None:
        return run(timeout_s)
    if spent.left <= 0:
        raise ExpressionError(f"{spent.what} used up its {spent.seconds:g} s for scenario code")
    began = time.monotonic()
    try:
        return run(min(timeout_s, spent.left))
    finally:
        spent.left -= time.monotonic() - began


# -- what the engine calls ------------------------------------------------------------------------

def _split(names: Mapping[str, Any]) -> tuple[dict, dict]:
    plain, functions = {}, {}
    for key, value in names.items():
        if callable(value) and not isinstance(value, type):
            functions[key] = value
        else:
            plain[key] = value
    return plain, functions


def _in_child(kind: str, src: str, plain: dict, functions: dict, timeout_s: float) -> Any:
    """Run one checked expression ("eval") or script ("exec") in a child, within the budget."""
    return _timed(timeout_s, lambda t: pool().run((kind, src, plain, list(functions), t),
                                                  functions, t))


def evaluate(src: str, names: Mapping[str, Any], timeout_s: float = 1.0) -> Any:
    """Evaluate one expression with `names` visible; raise ExpressionError on any failure."""
    check_expression(src)  # refusals need no process
    plain, functions = _split(names)
    return _in_child("eval", src, plain, functions, timeout_s)


def run_script(src: str, data: dict, timeout_s: float = 1.0,
               extra: Mapping[str, Any] | None = None) -> None:
    """Run a script on `data`; the names it assigns (plain JSON values only) land in `data`,
    with `extra` names visible but not written back unless reassigned."""
    check_script(src)
    plain, functions = _split(extra or {})
    plain["\0data"] = data
    changed = _in_child("exec", src, plain, functions, timeout_s)
    # Applied only once the child finished: a refused script leaves `data` untouched.
    data.clear()
    data.update(changed)


def execute(src: str, data: dict, timeout_s: float = 1.0) -> None:
    """Run a script on `data`; the names it assigns (plain JSON values only) land in `data`."""
    run_script(src, data, timeout_s)
