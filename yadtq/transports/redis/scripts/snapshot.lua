-- snapshot(limit): the monitor's view, read from indexes and counters only, so its cost
-- follows `limit`, never the number of stored tasks.
-- KEYS: processing, retrying, schedule, leased, stats, recent successes, recent failures
-- ARGV: task prefix, limit, recent limit, result TTL in seconds (index entries older than
--       that, on Redis's clock, belong to records that expired: they are dropped here)
local task_prefix, limit, recent = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local stale = string.format('%.6f', clock() - tonumber(ARGV[4]))

-- Up to `limit` ids of an index, oldest first: [id, since, name, worker, queue] each.
local function listed(index)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. stale)
  local rows = {}
  if limit > 0 then
    local ids = redis.call('ZRANGE', index, 0, limit - 1, 'WITHSCORES')
    for i = 1, #ids, 2 do
      if ids[i] == INDEX_KEEPER then
        break  -- scored +inf: last, and no task
      end
      local info = redis.call('HMGET', task_prefix .. ids[i], 'name', 'worker', 'queue')
      rows[#rows + 1] = {ids[i], ids[i + 1], info[1] or '', info[2] or '', info[3] or ''}
    end
  end
  return rows
end

local function latest(list)
  if recent > 0 then
    return redis.call('LRANGE', list, 0, recent - 1)
  end
  return {}
end

local processing, retrying = listed(KEYS[1]), listed(KEYS[2])
local due = {}
if limit > 0 then
  due = redis.call('ZRANGE', KEYS[3], 0, limit - 1, 'WITHSCORES')
end
-- How many tasks an index holds (its keeper is none).
local function counted(index)
  local size = redis.call('ZCARD', index)
  if size > 0 and redis.call('ZSCORE', index, INDEX_KEEPER) then
    size = size - 1
  end
  return size
end

return {counted(KEYS[1]), counted(KEYS[2]),
        redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]),
        redis.call('HGETALL', KEYS[5]), processing, retrying, due,
        latest(KEYS[6]), latest(KEYS[7])}
