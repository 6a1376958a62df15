"""Engine processes that take turns: with ``--isolate`` each benchmark's engines run within seconds of each other.

``python -m benchmarks --isolate`` runs scratchnet, TensorFlow and PyTorch in separate pytest processes, so
that no engine's threads, allocator or imported libraries can slow another. Run one after the other, the
processes measured the same model minutes apart, and a machine whose speed drifts over minutes (a shared or
virtual host) moved the ratios by up to 50% from one repeat to the next. So the processes of one repeat now run
side by side and take turns, a burst of one benchmark's rounds each:

* The parent (`Referee`) hands each child one end of a socket pair. Before its timed calls a child's
  ``measure`` sends ``ready <suite> <slot>`` and waits for ``go``; after them it sends ``done``.
* The referee says ``go`` only when no child is measuring and every child still running is waiting at its
  next benchmark. It picks the earliest slot (suite, then the benchmark's place in its suite: the same model
  or op case in every process), so each model's engines are measured back to back; among the engines at
  that slot, the one served longest ago (at first in the order that rotates from repeat to repeat,
  `Referee(first=...)`).
* The timed rounds of a benchmark come in bursts: between two bursts a child passes its turn
  (`Player.pass_turn`) and the other engines at that slot run a burst each. The rounds of the engines then
  interleave over the same seconds, and a slow phase of the machine (which on a shared virtual host comes
  and goes within seconds) falls on all of them alike instead of on whichever engine it caught.
* While one child measures, the others block on their socket: no process builds a model, traces a function
  or compiles a kernel during another's timed calls. The ``--bench-settle`` idle time that starts every
  measurement lets the previous engine's spinning threads go to sleep.

Messages are short ASCII lines (no pickling). A child that exits or crashes closes its socket, and the
referee stops waiting for it.
"""
from __future__ import annotations

import contextlib
import os
import socket
from multiprocessing.connection import Connection, wait

ENV = "SCRATCHNET_BENCH_TURNS"
"""The environment variable that hands a child the file descriptor of its end of the socket pair."""


class Referee:
    """The parent's side: one socket pair per child; `serve` hands out the turns until every child is gone."""

    def __init__(self, suites, first=0):
        self.suites = list(suites)  # the suites' module names in run order: the first part of a slot
        self.first = first  # the child that goes first at a shared slot; the others follow in order
        self.children = []  # (connection, the child's descriptor)
        self.log = []  # the turns given, in order: (child, suite, slot)

    def child_env(self, env):
        """A new socket pair: the environment and ``pass_fds`` for `subprocess.Popen` of the next child."""
        parent, child = socket.socketpair()
        self.children.append((Connection(parent.detach()), child))
        return dict(env, **{ENV: str(child.fileno())}), (child.fileno(),)

    def started(self):
        """Close the parent's copies of the children's ends (after every Popen), so a child's exit reads as EOF."""
        for _, child in self.children:
            child.close()

    def _order(self, index, message, served):
        _, suite, slot = message
        rank = self.suites.index(suite) if suite in self.suites else len(self.suites)
        return rank, int(slot), served[index]

    def serve(self):
        """Hand out turns until every child has closed its socket; `log` lists them."""
        connections = {connection: index for index, (connection, _) in enumerate(self.children)}
        count = len(self.children)
        served = {index: (index - self.first) % count - count for index in range(count)}  # when last served
        waiting, measuring = {}, None
        while connections:
            for connection in wait(list(connections)):
                index = connections[connection]
                try:
                    message = connection.recv_bytes().decode("ascii").split()
                except (EOFError, OSError):
                    del connections[connection]
                    waiting.pop(index, None)
                    measuring = None if measuring == index else measuring
                    connection.close()
                    continue
                if message[0] == "ready":
                    waiting[index] = message
                elif message[0] == "done" and measuring == index:
                    measuring = None
            if measuring is None and waiting and len(waiting) == len(connections):
                measuring = min(waiting, key=lambda i: self._order(i, waiting[i], served))
                served[measuring] = len(self.log)
                _, suite, slot = waiting.pop(measuring)
                self.log.append((measuring, suite, int(slot)))
                connection = next(c for c, i in connections.items() if i == measuring)
                connection.send_bytes(b"go")


class Player:
    """A child's side: `turn` blocks until the referee says go, and reports back when the timed calls end."""

    def __init__(self, fd: int):
        self.connection = Connection(fd)

    @classmethod
    def from_env(cls):
        """The player of this process, or None when it runs on its own (no referee)."""
        fd = os.environ.pop(ENV, None)  # popped: a process this one starts has no such descriptor
        return cls(int(fd)) if fd else None

    def close(self):
        self.connection.close()

    def _wait(self, suite, slot):
        self.connection.send_bytes(f"ready {suite} {slot}".encode("ascii"))
        if self.connection.recv_bytes() != b"go":
            raise RuntimeError("benchmark referee: expected 'go'")

    @contextlib.contextmanager
    def turn(self, suite: str, slot: int):
        """Wait for a turn at this benchmark (``suite``, ``slot``); hold it for the ``with`` block."""
        self._wait(suite, slot)
        try:
            yield self
        finally:
            self.connection.send_bytes(b"done")

    def pass_turn(self, suite: str, slot: int):
        """Inside `turn`: let the engines waiting at this benchmark have a burst each, then go on."""
        self.connection.send_bytes(b"done")
        self._wait(suite, slot)
