"""A stage kernel as jupyter_client sees it: its manager, its quick-ready client, the checks
and silent requests the kernel pool (run/pool.py) makes of it.

jupyter_client (with zmq, tornado and traitlets under it) takes ~0.1 s to import: this module is
imported by the pool's starter threads when the first kernel boots, never on the way from
`nb2pipe run` to the first stage's dispatch.
"""

from __future__ import annotations

import asyncio
import os
import queue
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import IO, Any, TypeVar

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager

from nb2pipe.run.kernels import KERNEL_START_TIMEOUT_ENV, KERNEL_START_TIMEOUT_S, describe_exit

KERNEL_INFO_AGAIN_S = 1.0  # how often a kernel that has not answered is asked again (as jupyter_client does)
# what a kernel writes when another process took one of the ports jupyter_client picked for it
# (the port race of kernels starting at once): past its shell port, it then hangs half-started
PORT_TAKEN = "ZMQError: Address already in use"

_Result = TypeVar("_Result")


class QuickReadyClient(AsyncKernelClient):
    """The client nbclient makes on a pooled kernel: ready once a `kernel_info` request was
    answered on shell and its `idle` status arrived on iopub (so iopub is connected, and nothing
    older waits in it), instead of jupyter_client's wait for 0.2 s of iopub silence per stage.
    A kernel hung half-started by a taken port (`KernelManager.port_taken`) counts as dead."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (KERNEL_START_TIMEOUT_S if timeout is None else timeout)
        while True:
            request = self.kernel_info()
            reply = await _answer(self.shell_channel, request, "kernel_info_reply", 1.0)
            # no idle status: iopub was not connected yet when it was sent, so ask again
            if reply is not None and await _answer(self.iopub_channel, request, "status", 0.5) is not None:
                self._handle_kernel_info_reply(reply)
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if isinstance(self.parent, KernelManager) and (taken := self.parent.port_taken()):  # hung half-started
                raise RuntimeError(f"Kernel died before replying to kernel_info: {taken}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout or KERNEL_START_TIMEOUT_S:g} seconds")


async def _answer(channel: Any, request: str, msg_type: str, patience: float) -> dict[str, Any] | None:
    """The first `msg_type` message on `channel` answering `request` within `patience` seconds
    (a status only when it is `idle`); the messages before it are dropped."""
    end = time.monotonic() + patience
    while (left := end - time.monotonic()) > 0:
        try:
            msg: dict[str, Any] = await channel.get_msg(timeout=left)
        except queue.Empty:
            return None
        answers = msg.get("parent_header", {}).get("msg_id") == request and msg["msg_type"] == msg_type
        if answers and (msg_type != "status" or msg["content"].get("execution_state") == "idle"):
            return msg
    return None


class KernelManager(AsyncKernelManager):
    """A kernel manager that remembers the clients made for it, so that they can be closed (the
    notebook client papermill runs on a kernel it did not start leaves its client open: sockets
    and a heartbeat thread per stage, until the process runs out of file handles), and the file
    its kernel writes its stdout/stderr to."""

    def __init__(self, output: IO[bytes], **kwargs: Any):
        super().__init__(client_class="nb2pipe.run.kernel_client.QuickReadyClient", **kwargs)
        self.output = output  # a file: the kernel's stdout and stderr
        self.pid: int | None = None
        self.stage = ""
        self.imported_ahead = False  # set (under the pool's lock) before an import ahead starts in it
        self._clients: list[Any] = []

    def client(self, **kwargs: Any) -> Any:
        made = super().client(**kwargs)
        self._clients.append(made)
        return made

    def close_clients(self) -> None:
        while self._clients:
            self._clients.pop().stop_channels()

    def exit_status(self) -> int | None:
        """The kernel process's exit status (negative: the signal that ended it); None while it runs."""
        process = getattr(self.provisioner, "process", None)
        return None if process is None else process.poll()

    def last_words(self) -> str:
        """The last line the kernel wrote to its stdout/stderr ('' if none)."""
        lines = [line.strip() for line in self._tail().splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""

    def port_taken(self) -> str:
        """The line in which the kernel says another process took one of its ports ('' if none)."""
        return next((line.strip()[:300] for line in self._tail().splitlines() if PORT_TAKEN in line), "")

    def _tail(self) -> str:
        size = os.fstat(self.output.fileno()).st_size
        return os.pread(self.output.fileno(), 4096, max(0, size - 4096)).decode("utf-8", "replace")


class NotReady(Exception):
    """A kernel that did not answer `kernel_info`: why, and whether starting another may help."""

    def __init__(self, reason: str, retry: bool):
        super().__init__(reason)
        self.retry = retry


def answers_kernel_info(km: KernelManager, timeout: float, closed: Callable[[], bool]) -> None:
    """Return once the kernel replied to `kernel_info`, else raise NotReady (see _kernel_info_answered)."""
    asyncio.run(_kernel_info_answered(km, timeout, closed))


async def _kernel_info_answered(km: KernelManager, timeout: float, closed: Callable[[], bool]) -> None:
    """Return once the kernel replied to `kernel_info` on its shell channel, else raise NotReady.

    Only the shell channel is opened: no iopub check and no 0.2 s flush as in a client's
    `wait_for_ready`, so the check costs one round trip once the kernel is up. As
    `wait_for_ready` does, the request is sent again every KERNEL_INFO_AGAIN_S until one is
    answered: a request sent while the kernel is still starting can be lost. A kernel that says
    another process took one of its ports is not waited for: bound past its shell port, it
    would hang half-started, neither answering nor ending."""
    client = own_client(km)
    client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
    try:
        requests: set[str] = set()
        deadline = time.monotonic() + timeout
        sent = 0.0
        while True:
            if time.monotonic() - sent >= KERNEL_INFO_AGAIN_S:
                requests.add(client.kernel_info())
                sent = time.monotonic()
            try:
                reply = await client.shell_channel.get_msg(timeout=0.1)
            except queue.Empty:
                pass
            else:
                if reply.get("parent_header", {}).get("msg_id") in requests:
                    return
                continue
            if not await km.is_alive():
                words = km.last_words()
                status = describe_exit(km.exit_status())
                raise NotReady(f"{words} ({status})" if words else f"it ended before it answered ({status})", retry=True)
            if taken := km.port_taken():  # it will never answer, and may never end by itself
                raise NotReady(f"{taken} (another process took one of its ports)", retry=True)
            if closed():
                raise NotReady("the run ended before it answered", retry=False)
            if time.monotonic() > deadline:
                raise NotReady(f"it did not answer within {timeout:g} s (set {KERNEL_START_TIMEOUT_ENV} to wait longer)", retry=False)
    finally:
        client.stop_channels()


# runs in the kernel, in a namespace of its own: installed modules only, failures left to the stage
_IMPORT_AHEAD = """
import importlib, importlib.util, os
here = os.path.realpath(os.getcwd()) + os.sep
for name in MODULES:
    try:
        spec = importlib.util.find_spec(name.partition('.')[0])
        if spec is None or not spec.origin or os.path.realpath(spec.origin).startswith(here):
            continue
        importlib.import_module(name)
    except BaseException:
        pass
"""


def own_client(km: KernelManager) -> Any:
    """A client of `km` that is closed where it is made (not remembered), with a session of its
    own: jupyter_client names a client's shell socket by its session id, and the kernel ignores
    a second connection under a name in use, so two clients sharing km's session at once would
    leave the later one (the stage's) without replies."""
    session = km.session.clone()
    session.session = str(uuid.uuid4())
    return AsyncKernelManager.client(km, session=session)


def import_silently(km: KernelManager, modules: tuple[str, ...], closed: Callable[[], bool]) -> None:
    """Import `modules` in `km` silently and wait for the reply (see _ran_silently)."""
    code = f"exec(compile({_IMPORT_AHEAD!r}, '<nb2pipe: imports ahead>', 'exec'), {{'MODULES': {list(modules)!r}}})"
    asyncio.run(_ran_silently(km, code, closed))


def change_directory(km: KernelManager, folder: str) -> None:
    """Make `folder` the working directory of `km` (a kernel of a pool shared by runs in other
    folders: a sweep's trials), silently, before its stage's first cell; NotReady when the kernel
    did not do it."""
    reply = asyncio.run(_ran_silently(km, f"__import__('os').chdir({folder!r})", lambda: False))
    if reply is None or reply["content"].get("status") != "ok":
        why = "it ended" if reply is None else f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}"
        raise NotReady(f"the kernel could not change to the stage's folder '{folder}' ({why})", retry=False)


async def _ran_silently(km: KernelManager, code: str, closed: Callable[[], bool]) -> dict[str, Any] | None:
    """Run `code` in `km` as a silent request (no history, no output, no variables in the user's
    namespace) and wait for its reply (returned), or the kernel's or the pool's end (None)."""
    client = own_client(km)
    client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
    try:
        request = client.execute(code, silent=True, store_history=False)
        while not closed() and await km.is_alive():
            reply = await _answer(client.shell_channel, request, "execute_reply", 0.2)
            if reply is not None:
                return reply
        return None
    finally:
        client.stop_channels()


def wait_for(awaitable: Awaitable[_Result]) -> _Result:
    """Run one of jupyter_client's kernel-manager calls to its end (they are typed as awaitables)."""

    async def wait() -> _Result:
        return await awaitable

    return asyncio.run(wait())


def shutdown(km: KernelManager) -> None:
    try:
        km.close_clients()
        wait_for(km.shutdown_kernel(now=True))
    except Exception:  # the kernel may already be gone
        kill(km)


def kill(km: AsyncKernelManager) -> None:
    process = getattr(km.provisioner, "process", None)
    if process is not None and process.poll() is None:
        process.kill()
