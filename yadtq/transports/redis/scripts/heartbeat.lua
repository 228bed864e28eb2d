-- heartbeat(info): store a worker's report, stamped with Redis's clock, and its instance's
-- liveness; move the watch on (records.watch_after_beat); prune stale workers.
-- Only a running worker's current instance is in the instances hash, as in
-- MemoryBackend._instance_alive: a restart under the same name retires the old instance.
-- KEYS: workers (name -> info), worker instances (name -> instance), instances
--       (instance -> last heard), seen (name -> last heard), watch, running (name of a
--       running worker -> last heard: what silent.lua reads)
-- ARGV: worker, instance, state, packed info, '1' if the worker could not reach Redis
--       before (an outage ended: a new watch starts) else '', retention, prune batch
local now = clock()
local since, last = read_watch(KEYS[5])
if last == 0 or ARGV[5] == '1' then
  since = now
end
redis.call('HSET', KEYS[5], 'since', since, 'last', now)

local previous = redis.call('HGET', KEYS[2], ARGV[1])
if previous and previous ~= ARGV[2] then
  redis.call('HDEL', KEYS[3], previous)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], now, ARGV[1])
if ARGV[3] == 'running' then
  redis.call('HSET', KEYS[3], ARGV[2], now)
  redis.call('ZADD', KEYS[6], now, ARGV[1])
else
  redis.call('HDEL', KEYS[3], ARGV[2])
  redis.call('ZREM', KEYS[6], ARGV[1])
end

-- Workers not heard from for the retention period leave the registry, a bounded batch
-- per heartbeat, so the cost of a heartbeat never follows the number of dead workers.
local stale = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. (now - tonumber(ARGV[6])),
                         'LIMIT', 0, tonumber(ARGV[7]))
for i = 1, #stale do
  local instance = redis.call('HGET', KEYS[2], stale[i])
  if instance then
    redis.call('HDEL', KEYS[3], instance)
  end
  redis.call('HDEL', KEYS[1], stale[i])
  redis.call('HDEL', KEYS[2], stale[i])
  redis.call('ZREM', KEYS[4], stale[i])
  redis.call('ZREM', KEYS[6], stale[i])
end
return #stale
