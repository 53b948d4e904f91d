"""Run the emulator: in a background thread for tests and `crmledger demo`, or in the foreground."""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import uvicorn

from dataverse_emulator import tls
from dataverse_emulator.app import Emulator, create_app
from dataverse_emulator.config import EmulatorConfig
from dataverse_emulator.records import API_PREFIX

_STARTUP_TIMEOUT_S = 15.0


class RunningEmulator:
    """An emulator serving on 127.0.0.1 in a daemon thread; `stop()` or use it as a context."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.emulator = Emulator.build(config)
        self.cert_path: Path | None = None
        key_path: Path | None = None
        if config.tls:
            directory = config.tls_dir or Path(tempfile.mkdtemp(prefix="crmledger-emulator-"))
            self.cert_path, key_path = tls.ensure_certificate(directory)
        # IPPROTO_TCP explicitly: asyncio disables Nagle only on such sockets, and without that
        # delayed ACKs add ~40 ms to every response.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((config.host, config.port))
        self.port: int = self._socket.getsockname()[1]
        scheme = "https" if config.tls else "http"
        self.root_url = f"{scheme}://{config.host}:{self.port}/"
        self.base_url = f"{scheme}://{config.host}:{self.port}{API_PREFIX}"
        self.authority = f"{self.root_url}{config.tenant}"
        self.token_url = f"{self.authority}/oauth2/v2.0/token"
        self._server = uvicorn.Server(
            uvicorn.Config(
                create_app(config, self.emulator),
                log_level="warning",
                lifespan="off",
                ssl_certfile=str(self.cert_path) if self.cert_path else None,
                ssl_keyfile=str(key_path) if key_path else None,
                timeout_keep_alive=30,
                timeout_graceful_shutdown=1,
            )
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Dataverse emulator did not start")
            time.sleep(0.01)

    def wait(self) -> None:
        """Block until the server stops."""
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def stop(self) -> None:
        """Stop serving and close the database."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
        self.emulator.store.close()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_emulator(config: EmulatorConfig) -> RunningEmulator:
    """Start an emulator in a background thread (port 0 picks a free port) and wait until ready."""
    return RunningEmulator(config)


def serve(
    config: EmulatorConfig, on_ready: Callable[[RunningEmulator], None] | None = None
) -> None:
    """Serve until interrupted; `on_ready` sees the running emulator (e.g. to print its URLs)."""
    with start_emulator(config) as running:
        if on_ready is not None:
            on_ready(running)
        with contextlib.suppress(KeyboardInterrupt):
            running.wait()
