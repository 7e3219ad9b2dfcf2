-- Shared by the bench's wrk scripts (bench/loadgen.py prepends it). One connection per wrk thread (-t C -c C),
-- so a thread's globals are its connection's state. A 503 (load shedding) is retried after BENCH_PAUSE_MS, as
-- the pilot does; done() prints the totals of every thread as one JSON line.
local threads = {}
local counted = {"ok", "shed", "failed", "empty"}
ok, shed, failed, empty, pause = 0, 0, 0, 0, 0
local pause_ms = tonumber(os.getenv("BENCH_PAUSE_MS") or "100")

function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads)
end

function delay()
  local ms = pause
  pause = 0
  return ms
end

function shed_reply(status)
  if status == 503 then
    shed = shed + 1
    pause = pause_ms
    return true
  end
  return false
end

function done(summary, latency, requests)
  local totals = {}
  for _, name in ipairs(counted) do totals[name] = 0 end
  for _, thread in ipairs(threads) do
    for _, name in ipairs(counted) do totals[name] = totals[name] + (thread:get(name) or 0) end
  end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, ' ..
    '"timeouts": %d, "status_errors": %d, "p50_us": %d, "p95_us": %d, "ok": %d, "shed": %d, "failed": %d, ' ..
    '"empty": %d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, summary.errors.status, latency:percentile(50), latency:percentile(95),
    totals.ok, totals.shed, totals.failed, totals.empty))
end
