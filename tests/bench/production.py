"""The daemon settings every benchmark uses: production mode (the only mode besides the demo),
with rate limits out of the way so the benchmark measures the daemon, not its throttling."""

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
