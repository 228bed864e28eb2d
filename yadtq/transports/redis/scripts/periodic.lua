-- periodic(op, entry_prefix, ...): the periodic schedules' steps, each atomic.
-- KEYS: periodic:names, periodic:due, schedule
-- A schedule is the hash entry_prefix..name (spec, next_run, paused, last_run,
-- last_task_id); periodic:due holds the names of those not paused, scored by next_run.
local op, prefix = ARGV[1], ARGV[2]

local function row(name)
  local f = redis.call('HMGET', prefix .. name, 'spec', 'next_run', 'paused', 'last_run', 'last_task_id')
  return {name, f[1], f[2], f[3] or '0', f[4] or '', f[5] or ''}
end

local function rows(names)
  local out = {}
  for i = 1, #names do
    if redis.call('EXISTS', prefix .. names[i]) == 1 then
      out[#out + 1] = row(names[i])
    end
  end
  return out
end

if op == 'save' then
  -- ARGV: name, spec, next_run
  local name, spec, next_run = ARGV[3], ARGV[4], ARGV[5]
  local key = prefix .. name
  local old = redis.call('HGET', key, 'spec')
  if old == spec then return 0 end
  redis.call('HSET', key, 'spec', spec, 'next_run', next_run)
  if not old then redis.call('HSET', key, 'paused', '0') end
  redis.call('ZADD', KEYS[1], 0, name)
  if redis.call('HGET', key, 'paused') ~= '1' then
    redis.call('ZADD', KEYS[2], next_run, name)
    redis.call('PUBLISH', KEYS[3], '')  -- sleeping tickers look again (redis/wakeups.py)
  end
  return 1
elseif op == 'list' then
  return rows(redis.call('ZRANGE', KEYS[1], 0, -1))
elseif op == 'due' then
  -- ARGV: now|''
  local now = tonumber(ARGV[3]) or clock()
  return rows(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now))
elseif op == 'advance' then
  -- ARGV: name, expected, next_run[, due, member, task_id]
  local name, expected, next_run = ARGV[3], ARGV[4], ARGV[5]
  local key = prefix .. name
  local f = redis.call('HMGET', key, 'next_run', 'paused')
  if not f[1] or f[2] == '1' or f[1] ~= expected or tonumber(expected) > clock() then
    return 0
  end
  redis.call('HSET', key, 'next_run', next_run)
  redis.call('ZADD', KEYS[2], next_run, name)
  if ARGV[6] then
    redis.call('ZADD', KEYS[3], ARGV[6], ARGV[7])
    redis.call('HSET', key, 'last_run', ARGV[6], 'last_task_id', ARGV[8])
  end
  return 1
elseif op == 'pause' then
  -- ARGV: name, '1'|'0', next_run|''
  local name, paused, next_run = ARGV[3], ARGV[4], ARGV[5]
  local key = prefix .. name
  if redis.call('EXISTS', key) == 0 then return 0 end
  redis.call('HSET', key, 'paused', paused)
  if next_run ~= '' then redis.call('HSET', key, 'next_run', next_run) end
  if paused == '1' then
    redis.call('ZREM', KEYS[2], name)
  else
    redis.call('ZADD', KEYS[2], redis.call('HGET', key, 'next_run'), name)
    redis.call('PUBLISH', KEYS[3], '')
  end
  return 1
elseif op == 'remove' then
  local name = ARGV[3]
  redis.call('ZREM', KEYS[1], name)
  redis.call('ZREM', KEYS[2], name)
  return redis.call('DEL', prefix .. name)
end
return redis.error_reply('periodic: unknown op ' .. tostring(op))
