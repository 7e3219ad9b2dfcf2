-- POST one body over and over: BENCH_PATH, the body from BENCH_BODY (a file; "%d" in its name is replaced by the
-- thread's index, for a body per connection), counted as ok when the reply contains BENCH_OK (plain text);
-- BENCH_CLOSE=1 sends each request on a new connection.
local path = os.getenv("BENCH_PATH")
local body_file = os.getenv("BENCH_BODY")
local ok_text = os.getenv("BENCH_OK") or ""
local headers = {["Content-Type"] = "application/json", ["Accept"] = "application/json"}
if os.getenv("BENCH_CLOSE") == "1" then
  headers["Connection"] = "close"  -- a new connection per request, as the pilot makes
end
local body = ""

function init(args)
  if body_file and body_file ~= "" then
    local f = assert(io.open(string.format(body_file, index), "rb"))
    body = f:read("*a")
    f:close()
  end
end

function request()
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, reply)
  if shed_reply(status) then return end
  if status == 200 and reply:find(ok_text, 1, true) then
    ok = ok + 1
  elseif status == 200 then
    empty = empty + 1
  else
    failed = failed + 1
  end
end
