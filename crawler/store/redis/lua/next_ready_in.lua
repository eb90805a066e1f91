-- ARGV: none  -> seconds (string) until something is claimable, or nil

-- #include _prologue.lua

local best = nil
for _, key in ipairs({'pending', 'leases'}) do
  local first = redis.call('ZRANGE', K .. key, 0, 0, 'WITHSCORES')
  if #first == 2 then
    local at = tonumber(first[2])
    if best == nil or at < best then best = at end
  end
end
if best == nil then return false end
return tostring(math.max(0, best - now))
