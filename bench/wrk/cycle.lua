-- The pilot's cycle per connection: getJob, then updateJob starting, running x3 and finished with a file report
-- (the job's log file), then the next getJob. "ok" counts whole cycles; a cycle whose step is refused starts over.
local site = os.getenv("BENCH_SITE")
local headers = {["Content-Type"] = "application/json", ["Accept"] = "application/json"}
local steps = {"starting", "running", "running", "running", "finished"}
local getjob = string.format('{"siteName": "%s", "computingElement": "%s", "prodSourceLabel": "user", ' ..
  '"node": "bench", "diskSpace": 100000, "mem": 4000.0, "cpu": 2600.0}', site, site)
local step, panda_id, log_file = 0, nil, nil

function request()
  if step == 0 then
    return wrk.format("POST", "/server/panda/getJob", headers, getjob)
  end
  local state = steps[step]
  local body = string.format('{"jobId": "%s", "state": "%s", "siteName": "%s", "node": "bench", "attemptNr": 0, ' ..
    '"schedulerID": "bench", "pilotID": "bench|PR|1", "coreCount": 1', panda_id, state, site)
  if state == "finished" then
    local report = string.format('{"%s": {"guid": "5d8e4b8c-2f0a-4e0b-9a55-%012d", "fsize": 1024, ' ..
      '"adler32": "0a1b2c3d", "surl": "file://localhost/se/%s", "endpoint": "LOCAL_DISK"}}',
      log_file, tonumber(panda_id), log_file)
    body = body .. ', "pilotErrorCode": 0, "transExitCode": 0, "exeErrorCode": 0, "xml": "' ..
      (report:gsub('"', '\\"')) .. '"'
  end
  return wrk.format("POST", "/server/panda/updateJob", headers, body .. "}")
end

function response(status, headers, reply)
  if shed_reply(status) then return end
  if status ~= 200 then
    failed = failed + 1
    step = 0
    return
  end
  if step == 0 then
    panda_id = reply:match('"PandaID":%s*(%d+)')
    if panda_id then
      log_file = reply:match('"logFile":%s*"([^"]*)"')
      step = 1
    else
      empty = empty + 1
      pause = 50
    end
  elseif not reply:find('"StatusCode":%s*"?0[^%d]') then
    failed = failed + 1
    step = 0
  elseif step == #steps then
    ok = ok + 1
    step = 0
  else
    step = step + 1
  end
end
