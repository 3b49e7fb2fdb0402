-- POST a body taken from the environment (BENCH_BODY, a form unless
-- BENCH_CONTENT_TYPE says otherwise), with an
-- optional Authorization header (BENCH_AUTH). wrk itself counts answers
-- that are not 2xx ("Non-2xx or 3xx responses").
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/x-www-form-urlencoded"
local auth = os.getenv("BENCH_AUTH")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
