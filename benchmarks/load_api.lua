-- wrk script of benchmarks/load_api.py. Environment:
--   LOAD_PATH    request path with query string
--   LOAD_METHOD  GET (default) or POST
--   LOAD_TOKENS  comma-separated bearer tokens, used in turn (none: anonymous)
--   LOAD_BODY    POST body; each PRICE in it becomes a random price
-- Prints one JSON line: requests, duration, errors (socket errors, timeouts
-- and non-2xx answers), p50/p99/max latency in microseconds.
local path = os.getenv("LOAD_PATH")
local method = os.getenv("LOAD_METHOD") or "GET"
local tokens = {}
for t in string.gmatch(os.getenv("LOAD_TOKENS") or "", "[^,]+") do tokens[#tokens + 1] = t end
local body_template = os.getenv("LOAD_BODY")
local n = 0

request = function()
  n = n + 1
  local headers = {}
  if #tokens > 0 then headers["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1] end
  local body = nil
  if body_template then
    headers["Content-Type"] = "application/json"
    body = string.gsub(body_template, "PRICE", tostring(math.random(2900, 3100)))
  end
  return wrk.format(method, path, headers, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "non_2xx": %d, '
    .. '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status,
    e.status, latency:percentile(50), latency:percentile(99), latency.max))
end
