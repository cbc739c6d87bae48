"""Pick the store from one URL, so deployment chooses memory, Redis or Redis Cluster by config.

- `None`, `""` or `memory://` → `MemoryStore` (one process, no dependencies).
- `redis://`, `rediss://`, `unix://` → `RedisStore` on one server.
- the same with `cluster=true` (or `cluster=1`/`yes`) in the query string, or `cluster=True`
  passed here → `RedisStore` on a Redis Cluster (the URL names any one startup node).

Keyword options go to the store's constructor (`stream_max`, `prefix`, `idle_ttl`, ...) or, for
Redis, to `RedisStore.from_url` (`socket_timeout`, `socket_connect_timeout`, `retries`, ...).
"""

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from daemon.store.base import Store
from daemon.store.memory import MemoryStore

_TRUE = {"1", "true", "yes", "on"}
_REDIS_SCHEMES = {"redis", "rediss", "unix"}


def split_cluster_flag(url: str) -> tuple[str, bool]:
    """Remove the `cluster` query parameter (redis-py does not know it) and return its value."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    flags = [value for key, value in query if key == "cluster"]
    rest = [(key, value) for key, value in query if key != "cluster"]
    cleaned = urlunsplit(parts._replace(query=urlencode(rest)))
    return cleaned, any(value.lower() in _TRUE for value in flags)


def open_store(url: str | None, *, cluster: bool | None = None, **opts: Any) -> Store:
    """Build the store a URL names; `cluster` overrides the URL's `cluster=` flag if given."""
    if not url or url.startswith("memory:"):
        return MemoryStore(**opts)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _REDIS_SCHEMES:
        raise ValueError(f"unsupported store URL scheme {scheme!r} (memory, redis, rediss, unix)")
    from daemon.store.redis import RedisStore  # only Redis deployments pay for the import

    cleaned, flagged = split_cluster_flag(url)
    is_cluster = flagged if cluster is None else cluster
    if is_cluster and scheme == "unix":
        raise ValueError("Redis Cluster cannot be reached over a unix socket")
    return RedisStore.from_url(cleaned, cluster=is_cluster, **opts)
