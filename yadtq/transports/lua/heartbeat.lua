-- heartbeat(info): store a worker's report and its instance's liveness.
-- Only a running worker's current instance is in the instances hash, as in
-- MemoryBackend._instance_alive: a restart under the same name retires the old instance.
-- KEYS: workers (name -> info), worker instances (name -> instance), instances
-- ARGV: worker, instance, state, last heartbeat, packed info
local previous = redis.call('HGET', KEYS[2], ARGV[1])
if previous and previous ~= ARGV[2] then
  redis.call('HDEL', KEYS[3], previous)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] == 'running' then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
else
  redis.call('HDEL', KEYS[3], ARGV[2])
end
return 0
