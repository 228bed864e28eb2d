-- claim_dedupe(key, task_id, ttl): the earlier task under `key` unless it failed or was
-- revoked (an unknown or expired record still counts, as in MemoryBackend), else `task_id`.
-- KEYS: dedupe key
-- ARGV: task prefix, task id, ttl ms
local earlier = redis.call('GET', KEYS[1])
if earlier then
  local state = redis.call('HGET', ARGV[1] .. earlier, 'state')
  if state ~= 'failed' and state ~= 'revoked' then
    return earlier
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return ARGV[2]
