"""What every benchmark shares: the daemon's settings (production mode, the only mode besides
the demo, with rate limits out of the way so the benchmark measures the daemon, not its
throttling) and waiting for a server process to listen."""

import asyncio
import json

SECRET = "bench-secret-bench-secret-bench-secret-0"
ORIGIN = "http://bench.invalid"


def daemon_env(zendesk_url: str = "http://127.0.0.1:9") -> dict[str, str]:
    """`zendesk_url`: the default answers nothing, which is right where the benchmark's
    contacts are supervisors' monitoring legs (they get no workflow); pass a sandbox's URL
    where Zendesk work runs."""
    return {
        "SWITCHBOARD_SECRET": SECRET,
        "SWITCHBOARD_ALLOWED_ORIGINS": json.dumps([ORIGIN]),
        "SWITCHBOARD_ZENDESK_URL": zendesk_url,
        "SWITCHBOARD_ZENDESK_EMAIL": "agent@example.com",
        "SWITCHBOARD_ZENDESK_API_TOKEN": "sandbox-token",
        "SWITCHBOARD_LOG_LEVEL": "warning",
        "SWITCHBOARD_RATE_PER_SECOND": "100000",
        "SWITCHBOARD_RATE_BURST": "100000",
    }


async def wait_port(port: int, attempts: int = 400) -> None:
    """Until a server process listens on `port` (every 50 ms, 20 s by default)."""
    for _ in range(attempts):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError(port)
