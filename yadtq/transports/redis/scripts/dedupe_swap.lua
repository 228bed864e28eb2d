-- claim_dedupe on several slot groups: set the dedupe key to `task_id` only if it still
-- holds `expected` ('' for none); the caller read that the expected task failed, was
-- revoked or that there was none. Returns 1 if set, 0 if the key changed meanwhile.
-- KEYS: dedupe key
-- ARGV: expected task id|'', task id, ttl ms
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
