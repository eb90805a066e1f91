-- ``ready_again(id)``: a done or failed URL back to pending, ready now in its place in
-- the crawl order, its attempts reset (the caller takes it out of its old state's set).

local function ready_again(id)
  redis.call('HSET', K .. 'u:' .. id, 'state', 'pending', 'attempts', 0, 'ready', id)
  redis.call('ZADD', K .. 'pending', id, id)
end
