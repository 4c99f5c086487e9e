-- wrk script: POST /v1/resolve with real n-best bodies, cycling through them.
--
-- Environment:
--   ERD_BENCH_BODIES  file of ready request bodies, one JSON object per line
--                     (tests/bench/bodies.py makes it from dev-format queries;
--                     deploy/bench.sh does this for you)
--   ERD_BENCH_TOKEN   optional bearer token (resolve_token) for the requests
--   ERD_BENCH_DELAY_MS  optional pause (whole ms) each connection takes after
--                     a response before its next request: C connections then
--                     offer about C * 1000 / (pause + latency) requests/s, a
--                     fixed load below the maximum (deploy/soak.sh sets it)
--
-- Each wrk thread starts at a different offset and walks the bodies in order,
-- wrapping around.  Responses other than 200 are counted per thread and
-- reported in done(), with the latency percentiles, as one line that
-- deploy/bench.sh parses:
--   ERD_BENCH requests=N seconds=S rps=R p50_us=.. p90_us=.. p99_us=.. p999_us=.. non200=N socket_errors=N
-- followed by the count of each non-200 status seen.

local bodies = {}
local index = 0
non200 = 0           -- global: read by done() through thread:get()
local statuses = {}     -- status -> count, this thread
statuses_str = ""      -- global copy of statuses for thread:get()
local threads = {}      -- main state only: every thread, for done()
local counter = 0

local function load_bodies()
   local path = os.getenv("ERD_BENCH_BODIES")
   if not path or path == "" then
      error("ERD_BENCH_BODIES is not set (file of JSON request bodies, one per line)")
   end
   local f = io.open(path, "r")
   if not f then error("cannot open " .. path) end
   for line in f:lines() do
      if line:match("%S") then bodies[#bodies + 1] = line end
   end
   f:close()
   if #bodies == 0 then error(path .. " holds no request bodies") end
end

-- wrk asks whether the script has delay() once, after loading it: define
-- it only when a pause is wanted.
local pause_ms = tonumber(os.getenv("ERD_BENCH_DELAY_MS") or "")
if pause_ms and pause_ms > 0 then
   function delay()
      return pause_ms
   end
end

function setup(thread)
   counter = counter + 1
   thread:set("thread_id", counter)
   threads[#threads + 1] = thread
end

function init(args)
   load_bodies()
   local id = thread_id or 1
   -- spread the threads over the file so they do not send the same sequence
   index = ((id - 1) * 7919) % #bodies
   local token = os.getenv("ERD_BENCH_TOKEN")
   wrk.method = "POST"
   wrk.path = "/v1/resolve"
   wrk.headers["Content-Type"] = "application/json"
   if token and token ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. token
   end
end

function request()
   index = index + 1
   if index > #bodies then index = 1 end
   return wrk.format(nil, nil, nil, bodies[index])
end

function response(status, headers, body)
   if status ~= 200 then
      non200 = non200 + 1
      statuses[status] = (statuses[status] or 0) + 1
      -- flatten for thread:get(), which copies only plain values
      statuses_str = ""
      for s, n in pairs(statuses) do
         statuses_str = statuses_str .. s .. "=" .. n .. " "
      end
   end
end

function done(summary, latency, requests)
   local bad, detail = 0, {}
   for _, t in ipairs(threads) do
      bad = bad + (t:get("non200") or 0)
      local s = t:get("statuses_str")
      if s and s ~= "" then detail[#detail + 1] = s end
   end
   local e = summary.errors
   local socket = e.connect + e.read + e.write + e.timeout
   local secs = summary.duration / 1e6
   io.write(string.format(
      "ERD_BENCH requests=%d seconds=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d p999_us=%d non200=%d socket_errors=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9),
      bad, socket))
   if bad > 0 then
      io.write("ERD_BENCH non-200 statuses: " .. table.concat(detail, "") .. "\n")
   end
end
