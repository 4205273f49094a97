-- PUT /api/v2/candles with BENCH_BATCH candles per request (default 1000). Each wrk thread cycles
-- through BENCH_SYMBOLS_PER_THREAD instruments named <BENCH_SYMBOL_PREFIX><thread>X<k> (run.sh
-- creates them), so concurrent requests rarely wait on each other's row locks. The same rows are
-- re-sent, so after the first round every request updates existing rows (ON CONFLICT DO UPDATE).
local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local bodies = {}
local next_body = 1

function init(args)
  local prefix = os.getenv("BENCH_SYMBOL_PREFIX") or "BENCH"
  local batch = tonumber(os.getenv("BENCH_BATCH") or "1000")
  local per_thread = tonumber(os.getenv("BENCH_SYMBOLS_PER_THREAD") or "8")
  local start = 1704067200 -- 2024-01-01T00:00:00Z, aligned to the minute
  for k = 1, per_thread do
    local symbol = string.format("%s%dX%d", prefix, tid, k)
    local parts = {}
    for i = 0, batch - 1 do
      local open = 100 + (i % 50) * 0.25
      local close = open + ((i % 3) - 1) * 0.1
      parts[#parts + 1] = string.format(
        '{"open_time":"%s","open":"%.2f","high":"%.2f","low":"%.2f","close":"%.2f","volume":"%d.5"}',
        os.date("!%Y-%m-%dT%H:%M:%SZ", start + 60 * i), open, math.max(open, close) + 0.5,
        math.min(open, close) - 0.5, close, 10 + i % 7)
    end
    bodies[k] = '{"symbol":"' .. symbol .. '","timeframe":"1m","candles":[' .. table.concat(parts, ",") .. ']}'
  end
end

function request()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format("PUT", "/api/v2/candles", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. (os.getenv("API_TOKEN") or ""),
  }, body)
end
