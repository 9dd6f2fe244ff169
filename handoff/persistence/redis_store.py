"""RedisStore: checkpoints in Redis, for many workers on many machines (``redis`` extra).

Each call is one hash ``{prefix}{call_id}`` with fields ``seq`` and ``data``, and
a TTL. The compare-and-set on ``seq`` runs as a Lua script, atomic on the server.
Timeouts are short and there are no client-side retries: during an outage a
write fails fast and the Checkpointer retries it later, off the call's path.
"""

from __future__ import annotations

from typing import Any

from .checkpoint import Checkpoint
from .store import ASIDE_MARK, ASIDE_TTL, DEFAULT_TTL, CheckpointStore, set_aside_from

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("RedisStore needs the redis package: pip install 'livekit-handoff[redis]'") from exc

_SAVE = """
local current = redis.call('HGET', KEYS[1], 'seq')
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'data', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

_REPLACE = """
local current = redis.call('HGET', KEYS[1], 'seq')
if not current or tonumber(current) ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'data', ARGV[3])
return 1
"""

_SET_ASIDE = """
local current = redis.call('HGET', KEYS[1], 'seq')
if not current or (ARGV[1] ~= '' and tonumber(current) ~= tonumber(ARGV[1])) then
  return false
end
local target = ARGV[2] .. current
redis.call('RENAME', KEYS[1], target)
redis.call('PEXPIRE', target, ARGV[3])
return target
"""


def fail_fast_client(url: str, timeout: float, **options: Any) -> aioredis.Redis:
    """A client for ``url`` whose commands fail after ``timeout`` seconds, never retried:
    during an outage a write fails fast and its background writer retries it later.
    ``options`` go to ``redis.asyncio.Redis.from_url``."""
    return aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                   retry=Retry(NoBackoff(), 0), **options)


class RedisStore(CheckpointStore):
    """Checkpoints in Redis at ``url`` (``redis://host:6379/0``), or on a given client."""

    kind = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: aioredis.Redis | None = None,
        prefix: str = "handoff:checkpoint:",
        ttl: float = DEFAULT_TTL,
        timeout: float = 1.0,
    ) -> None:
        self.prefix = prefix
        self.ttl = ttl
        self._owns_client = client is None
        self._client: aioredis.Redis = client or fail_fast_client(url, timeout)
        self._save_script: Any = self._client.register_script(_SAVE)
        self._replace_script: Any = self._client.register_script(_REPLACE)
        self._set_aside_script: Any = self._client.register_script(_SET_ASIDE)

    def key(self, call_id: str) -> str:
        return f"{self.prefix}{call_id}"

    async def save(self, checkpoint: Checkpoint) -> bool:
        stored = await self._save_script(
            keys=[self.key(checkpoint.call_id)],
            args=[checkpoint.seq, checkpoint.to_json(), int(self.ttl * 1000)],
        )
        return bool(stored)

    async def load(self, call_id: str) -> Checkpoint | None:
        data = await self._client.hget(self.key(call_id), "data")
        return None if data is None else Checkpoint.from_json(data)

    async def delete(self, call_id: str) -> None:
        await self._client.delete(self.key(call_id))

    async def list_calls(self, *, aside: bool = False) -> list[str]:
        keys = [key async for key in self._client.scan_iter(match=f"{self.prefix}*", count=500)]
        ids = ((k.decode() if isinstance(k, bytes) else k).removeprefix(self.prefix) for k in keys)
        return sorted(i for i in ids if (set_aside_from(i) is not None) == aside)

    async def set_aside(self, call_id: str, seq: int | None = None) -> str | None:
        # the target key is made in the script (from the stored seq), so it is passed as
        # its prefix; a cluster would need the call's hash tag in the prefix
        moved = await self._set_aside_script(
            keys=[self.key(call_id)],
            args=["" if seq is None else seq, self.key(call_id) + ASIDE_MARK,
                  int(ASIDE_TTL * 1000)])
        if moved is None:
            return None
        text = moved.decode() if isinstance(moved, bytes) else str(moved)
        return text.removeprefix(self.prefix)

    async def replace(self, checkpoint: Checkpoint, *, seq: int) -> bool:
        stored = await self._replace_script(
            keys=[self.key(checkpoint.call_id)],
            args=[seq, checkpoint.seq, checkpoint.to_json()],
        )
        return bool(stored)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
