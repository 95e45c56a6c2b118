-- wrk script: random aligned 1 MiB ranges of a 256 MiB object at wrk.path.
local mib = 1048576
request = function()
  local start = math.random(0, 255) * mib
  return wrk.format("GET", wrk.path, { ["Range"] = "bytes=" .. start .. "-" .. (start + mib - 1) })
end
