-- wait(): read a task record and, unless it is ready, register the caller's inbox channel
-- so that whoever makes the task ready publishes to it. Reading and registering in one
-- step means no state change can slip between them.
-- KEYS: task, waiters of the task
-- ARGV: inbox channel, ttl ms
local record = redis.call('HGETALL', KEYS[1])
for i = 1, #record, 2 do
  if record[i] == 'state' then
    if READY[record[i + 1]] then
      return record
    end
    break
  end
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return record
