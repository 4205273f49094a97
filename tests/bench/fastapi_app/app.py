"""The seed's stack (FastAPI + uvicorn + asyncpg), rebuilt for the side-by-side benchmark.

Same schema (the tables `trading-agent migrate` creates), same queries and the same behaviour as the
three endpoints of `trading-agent api` that tests/bench/run.sh measures:

  GET /healthz                    {"status":"ok","timestamp":"<RFC 3339>","role":"api","version":"0.1.0"}
  GET /readyz                     200 once the pool is connected and `SELECT 1` answers
  GET /api/v2/trades?limit=100    bearer auth; `SELECT * FROM trades ... ORDER BY id DESC LIMIT $3`
  PUT /api/v2/candles             bearer auth; validated batch, instrument must exist, one
                                  `INSERT ... SELECT * FROM unnest(...) ON CONFLICT DO UPDATE`

Written the way a FastAPI service is usually written (pydantic models for bodies and responses, a
dependency for auth, an asyncpg pool opened in the lifespan), with nothing slowed down on purpose.
Environment: DATABASE_URL, API_TOKEN, DB_MAX_CONNECTIONS (default 10, as `trading-agent`).
"""

from __future__ import annotations

import hmac
import json
import os
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal, Optional

import asyncpg
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

DATABASE_URL = os.environ["DATABASE_URL"]
API_TOKEN = os.environ["API_TOKEN"].encode()
DB_MAX_CONNECTIONS = int(os.environ.get("DB_MAX_CONNECTIONS", "10"))
MAX_BATCH = 10_000
TIMEFRAME_SECONDS = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "4h": 14400, "1d": 86400}

LIST_TRADES = """SELECT * FROM trades
         WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR symbol = $2)
         ORDER BY id DESC LIMIT $3"""
INSTRUMENT_EXISTS = "SELECT EXISTS (SELECT 1 FROM instruments WHERE symbol = $1)"
UPSERT_CANDLES = """INSERT INTO candles (symbol, timeframe, open_time, open, high, low, close, volume)
         SELECT $1, $2, * FROM unnest($3::timestamptz[], $4::numeric[], $5::numeric[],
                                     $6::numeric[], $7::numeric[], $8::numeric[])
         ON CONFLICT (symbol, timeframe, open_time) DO UPDATE
         SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
             close = EXCLUDED.close, volume = EXCLUDED.volume"""


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message


async def decode_jsonb(conn: asyncpg.Connection) -> None:
    """jsonb columns (a trade's `exits`) as Python objects, as asyncpg's docs show."""
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.pool = await asyncpg.create_pool(
        DATABASE_URL, min_size=1, max_size=DB_MAX_CONNECTIONS, init=decode_jsonb
    )
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan, title="trading-agent (FastAPI rebuild for benchmarks)")


@app.exception_handler(ApiError)
async def api_error(_: Request, e: ApiError) -> JSONResponse:
    return JSONResponse({"error": {"code": e.code, "message": e.message}}, status_code=e.status)


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok", "timestamp": now_rfc3339(), "role": "api", "version": "0.1.0"}


@app.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    try:
        async with request.app.state.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure means not ready
        return JSONResponse({"status": "not_ready", "reason": "database unavailable"}, status_code=503)
    return JSONResponse({"status": "ready"})


async def require_bearer(authorization: Optional[str] = Header(default=None)) -> None:
    if authorization is None or len(authorization) < 7 or authorization[:7].lower() != "bearer ":
        raise ApiError(401, "unauthorized", "missing or invalid bearer token")
    if not hmac.compare_digest(authorization[7:].strip().encode(), API_TOKEN):
        raise ApiError(401, "unauthorized", "missing or invalid bearer token")


class Trade(BaseModel):
    id: int
    symbol: str
    strategy_id: Optional[int]
    status: str
    quantity: Decimal
    entry_price: Decimal
    entry_fee: Decimal
    opened_at: datetime
    exit_price: Optional[Decimal]
    exit_fee: Optional[Decimal]
    closed_at: Optional[datetime]
    profit: Optional[Decimal]
    exit_reason: Optional[str]
    exits: dict[str, Any]
    peak_price: Optional[Decimal]


@app.get("/api/v2/trades", response_model=list[Trade], dependencies=[Depends(require_bearer)])
async def list_trades(
    request: Request,
    status: Optional[Literal["open", "closed"]] = None,
    symbol: Optional[str] = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[Trade]:
    async with request.app.state.pool.acquire() as conn:
        rows = await conn.fetch(LIST_TRADES, status, symbol, limit)
    return [Trade(**dict(row)) for row in rows]


class Candle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    open_time: datetime
    open: Decimal = Field(ge=0)
    high: Decimal = Field(ge=0)
    low: Decimal = Field(ge=0)
    close: Decimal = Field(ge=0)
    volume: Decimal = Field(ge=0)


class CandleBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(pattern=r"^[A-Z0-9][A-Z0-9._-]{0,31}$")
    timeframe: Literal["1m", "5m", "15m", "30m", "1h", "4h", "1d"]
    candles: list[Candle]


@app.put("/api/v2/candles", dependencies=[Depends(require_bearer)])
async def upsert_candles(request: Request, batch: CandleBatch) -> dict:
    if not batch.candles:
        raise ApiError(422, "validation_failed", "candles: must contain at least one candle")
    if len(batch.candles) > MAX_BATCH:
        raise ApiError(422, "validation_failed", f"candles: at most {MAX_BATCH} candles per request")
    step = TIMEFRAME_SECONDS[batch.timeframe]
    seen = set()
    for i, c in enumerate(batch.candles):
        if c.low > c.open or c.low > c.close or c.high < c.open or c.high < c.close:
            raise ApiError(422, "validation_failed", f"candles[{i}]: inconsistent OHLC")
        if c.open_time.tzinfo is None:
            raise ApiError(422, "validation_failed", f"candles[{i}].open_time: needs a time zone")
        ts = c.open_time.timestamp()
        if ts % step != 0:
            raise ApiError(422, "validation_failed", f"candles[{i}].open_time: not aligned to {batch.timeframe}")
        if ts in seen:
            raise ApiError(422, "validation_failed", f"candles[{i}].open_time: duplicate")
        seen.add(ts)
    candles = sorted(batch.candles, key=lambda c: c.open_time)
    pool = request.app.state.pool
    async with pool.acquire() as conn:
        if not await conn.fetchval(INSTRUMENT_EXISTS, batch.symbol):
            raise ApiError(422, "validation_failed", f"symbol: unknown instrument `{batch.symbol}`")
        async with conn.transaction():
            result = await conn.execute(
                UPSERT_CANDLES,
                batch.symbol,
                batch.timeframe,
                [c.open_time for c in candles],
                [c.open for c in candles],
                [c.high for c in candles],
                [c.low for c in candles],
                [c.close for c in candles],
                [c.volume for c in candles],
            )
    return {"upserted": int(result.split()[-1])}
