"""RedisEventStore: the event log in Redis Streams, for many workers (``redis`` extra).

Layout under ``prefix`` (default ``handoff:events:``):

- ``{prefix}log:{call_id}``: a stream, one entry per event (field ``e``: its JSON), in
  the order the writer appended them;
- ``{prefix}call:{call_id}``: a hash, the call's summary;
- ``{prefix}calls``: a sorted set of call ids by the time of their last event;
- ``{prefix}flow:{name}:{version}``: the DOT source of a flow version.

A batch is one MULTI/EXEC transaction, so a reader never sees half a batch. Every
key expires ``retention.max_age`` seconds after its last write; :meth:`purge` trims
the index to ``retention.max_calls``. Short timeouts and no client retries: during an
outage a write fails fast and the EventLog retries it later, off the call's path.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from .event import CallSummary, Event, summarise
from .store import EventStore, Retention

try:
    import redis.asyncio as aioredis

    from ..persistence.redis_store import fail_fast_client
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "RedisEventStore needs the redis package: pip install 'livekit-handoff[redis]'") from exc


class RedisEventStore(EventStore):
    """The event log in Redis at ``url`` (``redis://host:6379/0``), or on a given client."""

    kind = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: aioredis.Redis | None = None,
        prefix: str = "handoff:events:",
        retention: Retention | None = None,
        timeout: float = 1.0,
    ) -> None:
        self.prefix = prefix
        self.retention = retention or Retention()
        self._owns_client = client is None
        self._client: aioredis.Redis = client or fail_fast_client(url, timeout,
                                                                  decode_responses=True)

    def _log(self, call_id: str) -> str:
        return f"{self.prefix}log:{call_id}"

    def _call(self, call_id: str) -> str:
        return f"{self.prefix}call:{call_id}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}calls"

    async def append(self, batch: Sequence[Event], *, writer: str = "") -> None:
        if not batch:
            return
        ttl = int(self.retention.max_age * 1000)
        pipe = self._client.pipeline(transaction=True)
        for event in batch:
            pipe.xadd(self._log(event.call_id), {"e": event.to_json()})
        for call_id, s in summarise(batch, time.time(), writer).items():
            key = self._call(call_id)
            pipe.hsetnx(key, "flow", s.flow)
            pipe.hsetnx(key, "started_at", s.started_at)
            pipe.hset(key, mapping={
                "call_id": call_id, "flow_version": s.flow_version, "state": s.state,
                "seen_at": s.seen_at, "ended": int(s.ended), "end_reason": s.end_reason or "",
                "writer": s.writer})
            pipe.hincrby(key, "events", s.events)
            pipe.zadd(self._index, {call_id: s.updated_at}, gt=True)
            # updated_at and last_seq only grow: kept as the index score and a max here
            pipe.eval("local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1') "
                      "if tonumber(ARGV[2]) > c then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end",
                      1, key, "last_seq", s.last_seq)
            pipe.eval("local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1') "
                      "if tonumber(ARGV[2]) > c then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end",
                      1, key, "updated_at", repr(s.updated_at))
            pipe.pexpire(key, ttl)
            pipe.pexpire(self._log(call_id), ttl)
        pipe.pexpire(self._index, ttl)
        await pipe.execute()

    async def touch(self, call_ids: Iterable[str], now: float) -> None:
        ids = list(call_ids)
        if not ids:
            return
        pipe = self._client.pipeline(transaction=False)
        for call_id in ids:
            # only a call the store has: never make a summary of one field
            pipe.eval("if redis.call('EXISTS', KEYS[1]) == 1 then "
                      "redis.call('HSET', KEYS[1], 'seen_at', ARGV[1]) end", 1,
                      self._call(call_id), repr(now))
        await pipe.execute()

    async def events(self, call_id: str, after: int = 0, limit: int = 10_000) -> list[Event]:
        if after > 0:
            return (await self._tail(call_id, after))[:limit]
        out: list[Event] = []
        start = "-"
        while len(out) < limit:
            entries: Any = await self._client.xrange(self._log(call_id), min=start,
                                                     count=min(1000, limit))
            if not entries:
                break
            out.extend(Event.from_json(f["e"]) for _, f in entries)
            start = "(" + entries[-1][0]
        return out[:limit]

    async def _tail(self, call_id: str, after: int) -> list[Event]:
        """The events after ``after``, read backwards from the end of the stream: a live
        reader asks for the few newest events, so this costs what it returns."""
        found: list[Event] = []
        end = "+"
        while True:
            entries: Any = await self._client.xrevrange(self._log(call_id), max=end, count=100)
            for _, fields in entries:
                event = Event.from_json(fields["e"])
                if event.seq <= after:
                    return found[::-1]
                found.append(event)
            if len(entries) < 100:
                return found[::-1]
            end = "(" + entries[-1][0]

    async def call(self, call_id: str) -> CallSummary | None:
        data: Any = await self._client.hgetall(self._call(call_id))
        if not data or "flow" not in data:
            return None
        return CallSummary.from_dict(data)

    async def calls(self, limit: int = 100) -> list[CallSummary]:
        ids: Any = await self._client.zrevrange(self._index, 0, limit - 1)
        found = [await self.call(call_id) for call_id in ids]
        return [s for s in found if s is not None]

    async def put_flow(self, flow: str, version: str, dot: str) -> None:
        await self._client.set(f"{self.prefix}flow:{flow}:{version}", dot,
                               px=int(self.retention.max_age * 1000))

    async def flow_source(self, flow: str, version: str) -> str | None:
        found: Any = await self._client.get(f"{self.prefix}flow:{flow}:{version}")
        return found

    async def purge(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        old: Any = await self._client.zrangebyscore(
            self._index, "-inf", f"({now - self.retention.max_age}")
        extra: Any = await self._client.zrevrange(self._index, self.retention.max_calls, -1)
        doomed = sorted(set(old) | set(extra))
        if doomed:
            pipe = self._client.pipeline(transaction=True)
            pipe.zrem(self._index, *doomed)
            for call_id in doomed:
                pipe.delete(self._log(call_id), self._call(call_id))
            await pipe.execute()
        return len(doomed)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
