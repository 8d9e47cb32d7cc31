"""(being written)"""

from __future__ import annotations

from typing import Any


class JobPool:
    def __init__(self, service: Any) -> None:
        self.service = service

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def wake(self) -> None:
        pass
