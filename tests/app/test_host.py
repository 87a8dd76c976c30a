"""``System``: one running system per state dir."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from actoros.app import start_system
from actoros.config import ConfigError

from .configs import fake_config

pytestmark = pytest.mark.timeout(30)


async def test_a_second_system_on_a_state_dir_in_use_is_refused_naming_the_holder(
    tmp_path: Path,
) -> None:
    import os

    config = msgspec.structs.replace(fake_config(tmp_path), workload=None)
    system = await start_system(config)
    try:
        with pytest.raises(ConfigError) as caught:
            await start_system(config)
        [line] = caught.value.lines()
        assert line == (
            f"config: system.state_dir: {tmp_path} is in use by another actoros run "
            f"(pid {os.getpid()}): stop that run first, or give this one another "
            "system.state_dir"
        )
    finally:
        await system.shutdown()
    again = await start_system(config)  # the first one gave it up
    await again.shutdown()
