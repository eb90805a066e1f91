-- ARGV: max_urls, then REQUEST_FIELDS per request
--   -> {number of new URLs, 1 if the frontier is full now else 0}

-- #include _prologue.lua

-- #include _add_request.lua

local max_urls = tonumber(ARGV[1])
local added = 0
for i = 2, #ARGV, REQUEST_FIELDS do
  added = added + add_request(i, max_urls)
end
return {added, frontier_full(max_urls) and 1 or 0}
