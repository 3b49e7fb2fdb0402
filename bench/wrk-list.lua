-- POSTs to the token endpoint, each request with the next single-use value
-- from the file BENCH_LIST, put into BENCH_BODY where it says {}. When the
-- list runs out the last value is resent (wrk counts those answers as
-- non-2xx), so size the list to the run.
local values = {}
for line in io.lines(os.getenv("BENCH_LIST")) do values[#values + 1] = line end
local template = os.getenv("BENCH_BODY")
local i = 0
request = function()
  i = math.min(i + 1, #values)
  local body = template:gsub("{}", values[i])
  return wrk.format("POST", nil, { ["Content-Type"] = "application/x-www-form-urlencoded" }, body)
end
