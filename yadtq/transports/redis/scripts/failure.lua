-- record_failure(failure): prepend to the capped failure history, once per instance.
-- Entries are msgpack arrays [worker, instance, last heartbeat, detected]; the list is
-- short (failure_history) and failures are rare, so scanning it is cheap.
-- KEYS: failures
-- ARGV: instance, packed failure, cap
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
for i = 1, #entries do
  local ok, failure = pcall(cmsgpack.unpack, entries[i])
  if ok and type(failure) == 'table' and failure[2] == ARGV[1] then
    return 0
  end
end
redis.call('LPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[3]) - 1)
return 1
